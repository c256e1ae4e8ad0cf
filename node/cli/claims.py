"""`consortium evidence upload` and `consortium evidence types`: a member's claim documents, from the CLI.

Upload sends each document to the member's OWN node (POST /evidence/documents, signed with its key);
the node hashes it, returns a receipt at once and anchors the batch's Merkle root on chain. With
``--wait`` the command waits until every document is anchored and, with ``--out``, writes the proof
files an auditor needs (`consortium evidence verify`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from node.cli.data import raise_for_answer
from node.connect import own_node_client
from node.errors import ConsortiumError
from node.evidence.proof_file import proof_file_text

# Chain, store, web and table modules (web3, sqlalchemy, fastapi, httpx, rich) are imported inside the commands
# that use them: `consortium --help` imports every CLI module, and those take about a second to load.


def _cmd_upload(args: argparse.Namespace) -> int:
    import httpx

    from node.evidence.leaf import DocType, check_claim_id
    from node.runtime.settings import load_settings

    claim = check_claim_id(args.claim)
    doc_type = DocType.parse(args.type)
    files = [Path(f) for f in args.files]
    for f in files:  # every file readable before the first is sent: all or none from this command
        if not f.is_file():
            raise ConsortiumError(f"document {f} does not exist", reason="bad_argument", hint="check the path")
    client = own_node_client(load_settings(args.config))
    receipts = []
    try:
        for f in files:
            response = client.request("POST", "/evidence/documents", params={"claim_id": claim, "doc_type": doc_type.label},
                                      content=f.read_bytes())
            receipts.append({"file": str(f), **raise_for_answer(response, f"the node refused {f}")})
        proofs = _wait_anchored(client, claim, {r["doc_sha256"] for r in receipts}, args.timeout) if args.wait else []
    except httpx.HTTPError as exc:
        raise ConsortiumError(f"cannot reach this member's node at {client.base_url}: {type(exc).__name__}",
                              reason="unreachable", hint="start it with `consortium node start --config NODE.toml`") from None
    finally:
        client.close()
    written = []
    if args.out and proofs:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)

        by_sha = {r["doc_sha256"]: r["file"] for r in receipts}
        for p in proofs:
            path = out / (Path(by_sha[p["doc_sha256"]]).name + ".proof.json")
            path.write_text(proof_file_text(p, by_sha[p["doc_sha256"]]))
            written.append(str(path))
    if args.json:
        print(json.dumps({"claim_id": claim, "doc_type": doc_type.label, "receipts": receipts, "proof_files": written}))
        return 0
    for r in receipts:
        print(f"{r['file']}: sha256 {r['doc_sha256']} accepted for claim {claim} as {doc_type.label}")
    if args.wait:
        print(f"anchored on chain: {len(proofs)} document(s)" + (f"; proofs in {args.out}" if written else ""))
    return 0


def _wait_anchored(client, claim: str, shas: set[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        answer = raise_for_answer(client.request("GET", f"/evidence/proofs/{claim}"), "the node refused the proofs")
        mine = [p for p in answer["proofs"] if p["doc_sha256"] in shas]
        if len(mine) >= len(shas) and all("proof" in p for p in mine):
            return mine
        if time.monotonic() > deadline:
            states = sorted({p["state"] for p in mine})
            raise ConsortiumError(f"documents not anchored within {timeout:.0f} s (state {', '.join(states)})",
                                  reason="not_anchored", hint="see `/ready` and the node log; export later with "
                                  "`consortium evidence proof CLAIM --db NODE_HOME/node.db --out DIR`")
        time.sleep(0.3)


def _cmd_types(args: argparse.Namespace) -> int:
    from node.evidence.leaf import DocType

    types = [{"type": t.label, "code": int(t)} for t in DocType]
    if args.json:
        print(json.dumps(types))
    else:
        for t in types:
            print(f"{t['type']:<20} code {t['code']}")
    return 0


def register_evidence(evidence) -> None:
    """Add `upload` and `types` to the `evidence` subcommands (node/cli/evidence.py owns the group)."""
    upload = evidence.add_parser("upload", help="send claim documents to this member's node for anchoring")
    upload.add_argument("files", nargs="+", help="document files")
    upload.add_argument("--claim", required=True, help="the claim id, e.g. CLM-2026-0001")
    upload.add_argument("--type", required=True, help="document type (see `consortium evidence types`)")
    upload.add_argument("--config", required=True, type=Path, help="this member's node TOML (the node must run)")
    upload.add_argument("--wait", action="store_true", help="wait until the documents are anchored on chain")
    upload.add_argument("--out", help="with --wait: write each document's proof file (FILE.proof.json) here")
    upload.add_argument("--timeout", type=float, default=60.0)
    upload.add_argument("--json", action="store_true")
    upload.set_defaults(func=_cmd_upload)
    types = evidence.add_parser("types", help="the document types and their codes (the leaf's last byte)")
    types.add_argument("--json", action="store_true")
    types.set_defaults(func=_cmd_types)
