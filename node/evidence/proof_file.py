"""The proof file an auditor receives, as the CLI writes it (`evidence upload --out`, `evidence proof --out`)."""
from __future__ import annotations

import json
from pathlib import Path


def proof_file_text(proof: dict, document: str | None = None) -> str:
    """A proof file as written by the CLI: the anchoring transaction as a 0x hash (what explorers and
    `cast tx` take), and the document's file name, which lets `verify` tell a proof of another document
    (``wrong_proof``) from a changed document (``tampered_document``)."""
    proof = json.loads(json.dumps(proof))
    anchor = proof.get("anchor")
    if isinstance(anchor, dict) and isinstance(anchor.get("tx_hash"), str) and not anchor["tx_hash"].startswith("0x"):
        anchor["tx_hash"] = "0x" + anchor["tx_hash"]
    if document:
        proof["document"] = Path(document).name
    return json.dumps(proof, indent=2)
