"""`consortium evidence ...` and `consortium claim ...` subcommands (registered by node/cli/main.py)."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from node.cli.claims import register_evidence
from node.connect import connect_chain
from node.evidence.errors import EvidenceError, EvidenceVerificationError, UnknownClaim
from node.evidence.proof_file import proof_file_text

# Chain, store, web and table modules (web3, sqlalchemy, fastapi, httpx, rich) are imported inside the commands
# that use them: `consortium --help` imports every CLI module, and those take about a second to load.


def _gateway(args: argparse.Namespace):
    return connect_chain(args.rpc, args.deployment)[0]


def _cmd_verify(args: argparse.Namespace) -> int:
    from node.evidence.verify import RegistryEvidenceChain, load_proof_file, sha256_file, verify_evidence

    chain = RegistryEvidenceChain(_gateway(args))
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
    from rich.table import Table

    from node.console import stdout_console

    table = Table(title=f"Evidence of claim {args.claim}")
    for col in ("document sha256", "type", "state", "leaf", "batch", "block"):
        table.add_column(col)
    for p in proofs:
        pr = p.get("proof", {})
        table.add_row(p["doc_sha256"][:16] + "…", p["doc_type"], p["state"],
                      f"{pr['leaf_index']}/{pr['tree_size']}" if pr else "-", p["batch_id"][:12] + "…",
                      str(p.get("anchor", {}).get("block_number", "-")))
    stdout_console().print(table)
    if args.out:
        print(f"proof files written to {args.out}", file=sys.stderr)
    return 0


def _cmd_claim_step(args: argparse.Namespace) -> int:
    from node.chain.ledger import Ledger
    from node.evidence.claims import parse_step, record_claim_step
    from node.keys import load_member_keys, resolve_passphrase

    step = parse_step(args.step)
    keys = load_member_keys(args.keys, resolve_passphrase())
    result = record_claim_step(Ledger(_gateway(args), keys.account), args.claim, step, amount=args.amount,
                               express_threshold=args.express_threshold, materials_complete=args.materials_complete,
                               liability_clear=args.liability_clear)
    print(json.dumps(result) if args.json else
          f"claim {args.claim}: {result['step']}{' (express)' if result['express'] else ''} in block {result['block_number']}")
    return 0


def _cmd_claim_history(args: argparse.Namespace) -> int:
    from node.evidence.claims import claim_history

    history = claim_history(_gateway(args), args.claim, args.insurer)
    if not history:
        raise UnknownClaim(f"no steps recorded on chain for claim {args.claim!r}", hint="check the claim id and --deployment")
    if args.json:
        print(json.dumps([h.__dict__ for h in history]))
        return 0
    from rich.table import Table

    from node.console import stdout_console

    table = Table(title=f"Claim {args.claim}")
    for col in ("step", "block", "time (UTC)", "actor", "express"):
        table.add_column(col)
    for h in history:
        when = datetime.datetime.fromtimestamp(h.block_time, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(h.step, str(h.block_number), when, f"{h.actor_name} ({h.actor})", "yes" if h.express else "")
    stdout_console().print(table)
    return 0


def _chain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    p.add_argument("--deployment", required=True, help="deployment file (JSON)")
    p.add_argument("--json", action="store_true")


def register(sub) -> None:
    evidence = sub.add_parser("evidence", help="claim evidence: verify documents, export proofs").add_subparsers(
        dest="evidence_command", required=True)
    verify = evidence.add_parser("verify", help="check a document against its proof and the chain (exit 1 when invalid)")
    verify.add_argument("file", help="the document")
    verify.add_argument("--proof", required=True, help="proof file from `consortium evidence proof`")
    _chain_args(verify)
    verify.set_defaults(func=_cmd_verify)
    proof = evidence.add_parser("proof", help="export the inclusion proofs of a claim's documents")
    proof.add_argument("claim")
    proof.add_argument("--db", required=True, help="the node's evidence store (SQLite file)")
    proof.add_argument("--out", help="write one proof file per anchored document into this folder")
    proof.add_argument("--json", action="store_true")
    proof.set_defaults(func=_cmd_proof)

    register_evidence(evidence)  # evidence upload, evidence types

    claim = sub.add_parser("claim", help="claim lifecycle on chain").add_subparsers(dest="claim_command", required=True)
    step = claim.add_parser("step", help="record the next step of a claim, signed by this member")
    step.add_argument("claim")
    step.add_argument("step", help="reported, materials-complete, assessed, approved, rejected, paid")
    step.add_argument("--keys", required=True, type=Path, help="member key folder (passphrase from CONSORTIUM_PASSPHRASE)")
    step.add_argument("--amount", type=float, help="claim amount (with `assessed`: decides the express flag)")
    step.add_argument("--express-threshold", type=float, help="express claims are strictly under this amount")
    step.add_argument("--materials-complete", action="store_true")
    step.add_argument("--liability-clear", action="store_true")
    _chain_args(step)
    step.set_defaults(func=_cmd_claim_step)
    history = claim.add_parser("history", help="a claim's steps with block times and actors")
    history.add_argument("claim")
    history.add_argument("--insurer", help="whose claim (name or address); needed when two insurers use the same claim id")
    _chain_args(history)
    history.set_defaults(func=_cmd_claim_history)
