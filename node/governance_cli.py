"""CLI for grants and governance, acting on chain with the member's own key (settings from --config)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from node.errors import ConsortiumError

PURPOSES = ("UNDERWRITING", "CLAIMS", "FRAUD", "STATISTICS", "PRICING")
ROLES = ("INSURER", "PLATFORM", "TECH", "AUDITOR", "REGULATOR")


def _ledger(args):
    from node.context import open_ledger
    from node.settings import load_settings

    return open_ledger(load_settings(args.config))[0]


def _hex32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConsortiumError(f"{what} must be 32 bytes of hex", reason="bad_argument", hint="give 0x followed by 64 hex digits")
    return raw


def _consent_ref(args) -> bytes:
    from node.consent import batch_consent_ref, verify_consent

    if args.consent_ref:
        return _hex32(args.consent_ref, "--consent-ref")
    if args.consent_file:
        try:
            doc = json.loads(Path(args.consent_file).read_text())
        except (OSError, ValueError) as exc:
            raise ConsortiumError(f"cannot read consent file {args.consent_file}: {exc}", reason="bad_argument",
                                  hint="pass a signed consent JSON or a JSON list of consent records") from None
        return batch_consent_ref(doc) if isinstance(doc, list) else verify_consent(doc)
    raise ConsortiumError("a grant needs a consent reference", reason="bad_argument",
                          hint="pass --consent-file (signed consent or consent batch) or --consent-ref")


def _print(args, data: dict, text: str) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else text)


def _grant_create(args) -> int:
    from node.chain.deployment import Purpose
    from node.chain.ledger import dataset_id
    from node.datasets import dataset_schema

    dataset_schema(args.dataset)
    ledger = _ledger(args)
    now = ledger.gateway.block_time()
    gid = ledger.grant(args.grantee, dataset_id(args.dataset), Purpose[args.purpose], expires_at=now + int(args.days * 86400),
                       scope_hash=hashlib.sha256((args.scope or "").encode()).digest(), consent_ref=_consent_ref(args))
    _print(args, {"grant_id": gid}, f"granted: grant {gid}")
    return 0


def _grant_revoke(args) -> int:
    _ledger(args).revoke(args.grant_id)
    _print(args, {"grant_id": args.grant_id, "revoked": True}, f"revoked grant {args.grant_id}")
    return 0


def _grant_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    ledger = _ledger(args)
    ids = ledger.grants_received(ledger.address) if args.received else ledger.grants_given(ledger.address)
    grants = [ledger.get_grant(i) for i in ids]
    rows = [{"grant_id": g.grant_id, "owner": g.owner, "grantee": g.grantee, "purpose": g.purpose.name,
             "expires_at": g.expires_at, "revoked": bool(g.revoked_at), "consent_ref": "0x" + g.consent_ref.hex()} for g in grants]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title="grants received" if args.received else "grants given")
    for col in ("grant_id", "owner", "grantee", "purpose", "expires_at", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("grant_id", "owner", "grantee", "purpose", "expires_at", "revoked")))
    Console().print(table)
    return 0


def _consent_sign(args) -> int:
    from eth_account import Account

    from node.chain.deployment import Purpose
    from node.chain.ledger import dataset_id
    from node.consent import Consent, sign_consent
    from node.keys import load_member_keys, resolve_passphrase

    subject = load_member_keys(args.subject_keys, resolve_passphrase()).account if args.subject_keys else Account.create()
    consent = Consent(subject.address, args.owner, args.grantee, "0x" + dataset_id(args.dataset).hex(), int(Purpose[args.purpose]),
                      int(time.time() + args.days * 86400), "0x" + os.urandom(32).hex())
    doc = sign_consent(subject, consent, args.chain_id)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    _print(args, {"out": args.out, "subject": subject.address}, f"wrote signed consent of {subject.address} to {args.out}")
    return 0


def _tally(ledger, proposal_id: int) -> dict:
    """Votes so far and the votes needed: more than two thirds of the members in good standing now."""
    registry = ledger.registry
    p = ledger.gateway.call(registry.functions.getProposal(proposal_id))
    electorate = ledger.gateway.call(registry.functions.goodStandingCount())
    needed = electorate * 2 // 3 + 1
    return {"proposal_id": proposal_id, "candidate": p[0], "name": p[2], "votes": p[8], "electorate": electorate,
            "needed": needed, "admitted": bool(p[9])}


def _candidate_address(value: str) -> str:
    """The candidate's address, or a key folder's (its keystore's public address; no passphrase needed)."""
    from web3 import Web3

    folder = Path(value)
    if (folder / "account.json").is_file():
        try:
            return Web3.to_checksum_address(json.loads((folder / "account.json").read_text())["address"])
        except (ValueError, KeyError) as exc:
            raise ConsortiumError(f"cannot read the address in {folder / 'account.json'}: {exc}", reason="bad_argument",
                                  hint="pass the candidate's 0x address") from None
    if not Web3.is_address(value):
        raise ConsortiumError(f"--candidate {value!r} is neither an address nor a key folder", reason="bad_argument",
                              hint="pass the 0x address or the folder made by `consortium keys new`")
    return Web3.to_checksum_address(value)


def _tally_text(t: dict) -> str:
    if t["admitted"]:
        return f"{t['name']} admitted with {t['votes']} votes ({t['needed']} needed of {t['electorate']} members)"
    more = max(t["needed"] - t["votes"], 0)
    return (f"{t['votes']} of {t['needed']} votes needed ({t['electorate']} members in good standing, more than two "
            f"thirds must vote); {more} more: each runs `consortium gov vote {t['proposal_id']} --config NODE.toml`")


def _gov(args) -> int:
    from node.chain.deployment import Role
    from node.members import MemberDirectory

    ledger = _ledger(args)
    action = args.gov_command
    if action == "propose":
        candidate = _candidate_address(args.candidate)
        pid = ledger.propose_member(candidate, args.name, Role[args.role], args.endpoint or "")
        tally = _tally(ledger, pid)
        _print(args, tally, f"proposal {pid} opened for {args.name} ({candidate}); {_tally_text(tally)}")
    elif action == "vote":
        before = _tally(ledger, args.proposal_id)  # the electorate the vote is counted against
        ledger.vote(args.proposal_id)
        tally = {**before, **{k: v for k, v in _tally(ledger, args.proposal_id).items() if k in ("votes", "admitted")}}
        hint = ""
        if tally["admitted"] and ledger.gateway.dev:
            from node.settings import load_settings

            hint = (f"; give its account gas: `consortium chain fund {tally['name']} --rpc {ledger.gateway.rpc_url} "
                    f"--deployment {load_settings(args.config).deployment}`")
        _print(args, tally, f"vote cast on proposal {args.proposal_id}: {_tally_text(tally)}{hint}")
    elif action in ("warn", "suspend", "reinstate", "expel"):
        member = MemberDirectory(ledger.members()).resolve(args.member)
        getattr(ledger, action)(member, hashlib.sha256((args.reason or "").encode()).digest())
        _print(args, {"member": member, "action": action}, f"{action}: {args.member} ({member})")
    elif action == "endpoint":
        ledger.set_endpoint(args.url)
        _print(args, {"endpoint": args.url}, f"endpoint set to {args.url}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    def common(p):
        p.add_argument("--config", required=True, type=Path, help="the node's TOML settings (keys, rpc_url, deployment)")
        p.add_argument("--json", action="store_true")
        return p

    grant = sub.add_parser("grant", help="grant, revoke and list data-use authorizations").add_subparsers(dest="grant_command", required=True)
    create = common(grant.add_parser("create", help="grant a member the use of a dataset for a purpose"))
    create.add_argument("--grantee", required=True)
    create.add_argument("--dataset", required=True)
    create.add_argument("--purpose", required=True, choices=PURPOSES)
    create.add_argument("--days", type=float, default=30)
    create.add_argument("--scope", help="scope document (its SHA-256 goes on chain)")
    create.add_argument("--consent-file", help="a subject's signed consent (JSON) or a JSON list of consent records")
    create.add_argument("--consent-ref", help="a consent reference (32 bytes hex) computed elsewhere")
    create.set_defaults(func=_grant_create)
    revoke = common(grant.add_parser("revoke", help="revoke a grant"))
    revoke.add_argument("grant_id", type=int)
    revoke.set_defaults(func=_grant_revoke)
    listing = common(grant.add_parser("list", help="grants given (default) or received"))
    listing.add_argument("--received", action="store_true")
    listing.set_defaults(func=_grant_list)

    consent = sub.add_parser("consent", help="data-subject consents").add_subparsers(dest="consent_command", required=True)
    sign = consent.add_parser("sign", help="sign a data subject's EIP-712 consent")
    for name in ("--owner", "--grantee", "--dataset", "--out"):
        sign.add_argument(name, required=True)
    sign.add_argument("--purpose", required=True, choices=PURPOSES)
    sign.add_argument("--days", type=float, default=365)
    sign.add_argument("--chain-id", type=int, required=True)
    sign.add_argument("--subject-keys", help="the subject's key folder (default: a fresh throwaway subject key)")
    sign.add_argument("--json", action="store_true")
    sign.set_defaults(func=_consent_sign)

    gov = sub.add_parser("gov", help="consortium governance").add_subparsers(dest="gov_command", required=True)
    p = common(gov.add_parser("propose", help="propose a new member"))
    p.add_argument("--candidate", required=True, help="the new member's address or its key folder")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--endpoint")
    p.set_defaults(func=_gov)
    v = common(gov.add_parser("vote", help="vote for a proposal"))
    v.add_argument("proposal_id", type=int)
    v.set_defaults(func=_gov)
    for action in ("warn", "suspend", "reinstate", "expel"):
        c = common(gov.add_parser(action, help=f"{action} a member (regulator only)"))
        c.add_argument("member")
        c.add_argument("--reason", default="")
        c.set_defaults(func=_gov)
    e = common(gov.add_parser("endpoint", help="change this member's node endpoint"))
    e.add_argument("url")
    e.set_defaults(func=_gov)
