"""`consortium claim step` and `claim history`: a claim's lifecycle on chain, step by step."""
from __future__ import annotations

import argparse
import datetime
import json

from node.cli.options import chain_command, connect, print_table
from node.evidence.errors import UnknownClaim


def _cmd_claim_step(args: argparse.Namespace) -> int:
    from node.evidence.claims import parse_step, record_claim_step

    step = parse_step(args.step)
    result = record_claim_step(connect(args, signed=True)[0], args.claim, step, amount=args.amount,
                               express_threshold=args.express_threshold, materials_complete=args.materials_complete,
                               liability_clear=args.liability_clear)
    print(json.dumps(result) if args.json else
          f"claim {args.claim}: {result['step']}{' (express)' if result['express'] else ''} in block {result['block_number']}")
    return 0


def _cmd_claim_history(args: argparse.Namespace) -> int:
    from node.evidence.claims import claim_history

    history = claim_history(connect(args)[0].gateway, args.claim, args.insurer)
    if not history:
        raise UnknownClaim(f"no steps recorded on chain for claim {args.claim!r}", hint="check the claim id and --deployment")
    if args.json:
        print(json.dumps([h.__dict__ for h in history]))
        return 0
    print_table(f"Claim {args.claim}", ("step", "block", "time (UTC)", "actor", "express"),
                [(h.step, h.block_number,
                  datetime.datetime.fromtimestamp(h.block_time, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                  f"{h.actor_name} ({h.actor})", "yes" if h.express else "") for h in history])
    return 0


def register(sub) -> None:
    claim = sub.add_parser("claim", help="claim lifecycle on chain").add_subparsers(dest="claim_command", required=True)
    step = chain_command(claim, "step", "record the next step of a claim, signed by this member", _cmd_claim_step, keys=True)
    step.add_argument("claim")
    step.add_argument("step", help="reported, materials-complete, assessed, approved, rejected, paid")
    step.add_argument("--amount", type=float, help="claim amount (with `assessed`: decides the express flag)")
    step.add_argument("--express-threshold", type=float, help="express claims are strictly under this amount")
    step.add_argument("--materials-complete", action="store_true")
    step.add_argument("--liability-clear", action="store_true")
    history = chain_command(claim, "history", "a claim's steps with block times and actors", _cmd_claim_history)
    history.add_argument("claim")
    history.add_argument("--insurer", help="whose claim (name or address); needed when two insurers use the same claim id")
