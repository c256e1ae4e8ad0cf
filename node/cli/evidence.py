"""`consortium evidence ...`: a member's claim documents anchored on chain, their proofs, and the auditor's check.

``upload`` sends each document to the member's OWN node (POST /evidence/documents, signed with its key);
the node hashes it, returns a receipt at once and anchors the batch's Merkle root on chain. With
``--wait`` the command waits until every document is anchored and, with ``--out``, writes the proof
files an auditor needs (``evidence verify``, which checks a document against its proof and the chain).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from node.cli.options import call_node, chain_command, config_option, connect, json_option, own_node, print_table
from node.errors import ConsortiumError
from node.evidence.errors import EvidenceError, EvidenceVerificationError
from node.evidence.proof_file import proof_file_text


def _cmd_verify(args: argparse.Namespace) -> int:
    from node.evidence.verify import RegistryEvidenceChain, load_proof_file, sha256_file, verify_evidence

    chain = RegistryEvidenceChain(connect(args)[0].gateway)
    try:
        verdict = verify_evidence(sha256_file(args.file), load_proof_file(args.proof), chain, document_name=args.file)
    except EvidenceVerificationError as exc:
        if args.json:
            print(json.dumps({"valid": False, "reason": exc.reason, "message": exc.one_line()}))
        else:
            print(f"INVALID ({exc.reason}): {exc.one_line()}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(verdict.to_json()))
        return 0

    when = datetime.datetime.fromtimestamp(verdict.block_time, datetime.timezone.utc).isoformat()
    status = "" if verdict.submitter_status == "ACTIVE" else f" [{verdict.submitter_status}]"
    print(f"VALID: {args.file} is the {verdict.doc_type} submitted for claim {verdict.claim_id}; anchored in block "
          f"{verdict.block_number} at {when} by {verdict.submitter_name} ({verdict.submitter}){status}; "
          f"leaf {verdict.leaf_index} of {verdict.tree_size}, batch {verdict.batch_id}")
    return 0


def _cmd_proof(args: argparse.Namespace) -> int:
    """Export a claim's proofs from the member's store (no chain access needed: the auditor checks them)."""
    from node.evidence.store import ANCHORED, create_store_engine

    if not Path(args.db).exists():
        raise EvidenceError(f"evidence store {args.db} does not exist", hint="pass the node's --db file")
    # Proofs need only the store; the service's tree code is reused through a read-only stand-in ledger.
    from node.evidence.leaf import check_claim_id
    from node.evidence.service import EvidenceService

    class _ReadOnly:  # the service needs an address for batch ids only when it opens batches
        address = "0x" + "00" * 20

        class evidence:
            address = "0x" + "00" * 20

    service = EvidenceService(create_store_engine(args.db), _ReadOnly())
    proofs = service.proofs(check_claim_id(args.claim))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for p in proofs:
            if p["state"] == ANCHORED:
                (out / f"{p['claim_id']}-{p['doc_sha256'][:16]}.proof.json").write_text(proof_file_text(p))
    if args.json:
        print(json.dumps(proofs))
        return 0
    print_table(f"Evidence of claim {args.claim}", ("document sha256", "type", "state", "leaf", "batch", "block"),
                [(p["doc_sha256"][:16] + "…", p["doc_type"], p["state"],
                  f"{p['proof']['leaf_index']}/{p['proof']['tree_size']}" if p.get("proof") else "-", p["batch_id"][:12] + "…",
                  p.get("anchor", {}).get("block_number", "-")) for p in proofs])
    if args.out:
        print(f"proof files written to {args.out}", file=sys.stderr)
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from node.evidence.leaf import DocType, check_claim_id

    claim = check_claim_id(args.claim)
    doc_type = DocType.parse(args.type)
    files = [Path(f) for f in args.files]
    for f in files:  # every file readable before the first is sent: all or none from this command
        if not f.is_file():
            raise ConsortiumError(f"document {f} does not exist", reason="bad_argument", hint="check the path")
    client = own_node(args)
    receipts = []
    try:
        for f in files:
            receipts.append({"file": str(f), **call_node(client, "POST", "/evidence/documents", what=f"the node refused {f}",
                                                          params={"claim_id": claim, "doc_type": doc_type.label},
                                                          content=f.read_bytes())})
        proofs = _wait_anchored(client, claim, {r["doc_sha256"] for r in receipts}, args.timeout) if args.wait else []
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
        answer = call_node(client, "GET", f"/evidence/proofs/{claim}", what="the node refused the proofs")
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


def register(sub) -> None:
    evidence = sub.add_parser("evidence", help="claim evidence: verify documents, export proofs").add_subparsers(
        dest="evidence_command", required=True)
    verify = chain_command(evidence, "verify",
                           "check a document against its proof and the chain (exit 1 when invalid)", _cmd_verify)
    verify.add_argument("file", help="the document")
    verify.add_argument("--proof", required=True, help="proof file from `consortium evidence proof`")
    proof = evidence.add_parser("proof", help="export the inclusion proofs of a claim's documents")
    proof.add_argument("claim")
    proof.add_argument("--db", required=True, help="the node's evidence store (SQLite file)")
    proof.add_argument("--out", help="write one proof file per anchored document into this folder")
    json_option(proof)
    proof.set_defaults(func=_cmd_proof)

    upload = evidence.add_parser("upload", help="send claim documents to this member's node for anchoring")
    upload.add_argument("files", nargs="+", help="document files")
    upload.add_argument("--claim", required=True, help="the claim id, e.g. CLM-2026-0001")
    upload.add_argument("--type", required=True, help="document type (see `consortium evidence types`)")
    config_option(upload, "this member's node TOML (the node must run)")
    upload.add_argument("--wait", action="store_true", help="wait until the documents are anchored on chain")
    upload.add_argument("--out", help="with --wait: write each document's proof file (FILE.proof.json) here")
    upload.add_argument("--timeout", type=float, default=60.0)
    json_option(upload)
    upload.set_defaults(func=_cmd_upload)
    types = evidence.add_parser("types", help="the document types and their codes (the leaf's last byte)")
    json_option(types)
    types.set_defaults(func=_cmd_types)
