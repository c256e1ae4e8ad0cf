"""CLI for grants and governance, acting on chain with the member's own key (settings from --config)."""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from node.cli.options import config_option, connect, directory, emit, json_option, print_table
from node.enums import PURPOSE_NAMES, ROLE_NAMES, ZERO32, Purpose, Role
from node.errors import ConsortiumError


def _ledger(args):
    """This member's ledger, signed with its key (settings from --config)."""
    return connect(args, signed=True)[0]


def _hex32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConsortiumError(f"{what} must be 32 bytes of hex", reason="bad_argument", hint="give 0x followed by 64 hex digits")
    return raw


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConsortiumError(f"cannot read {what} {path}: {exc}", reason="bad_argument",
                              hint="pass the JSON written by `consent sign` / `consent batch`, or a JSON list of records") from None


def _grant_consent(args, ledger, dataset: bytes, scope_hash: bytes, expires_at: int | None):
    """(signed consent or None, consent_ref, expires_at) for ``grant create``; the chain checks the binding."""
    from node.access.consent import attest_batch, parse_consent

    if bool(args.consent_file) == bool(args.consent_ref):
        raise ConsortiumError("a grant needs exactly one consent", reason="bad_argument",
                              hint="pass --consent-file (a signed consent, or a JSON list of your own consent records) "
                                   "or --consent-ref (the hash of your consent record or legal basis)")
    if args.consent_ref:
        return None, _hex32(args.consent_ref, "--consent-ref"), expires_at
    doc = _read_json(args.consent_file, "consent file")
    if isinstance(doc, list):  # this member's own batch of subjects' records: it attests their root for this grant
        expires_at = expires_at or ledger.gateway.block_time() + 30 * 86400
        return attest_batch(ledger.account, doc, owner=ledger.address, grantee=args.grantee, dataset_id=dataset,
                            purpose=int(Purpose[args.purpose]), scope_hash_hex="0x" + scope_hash.hex(), expires_at=expires_at,
                            chain_id=ledger.gateway.chain_id, contract=ledger.authorizations.address), ZERO32, expires_at
    signed = parse_consent(doc)
    return signed, ZERO32, expires_at or signed.consent.expires_at  # by default the grant lasts as long as its consent


def _grant_create(args) -> int:
    from node.chain.ledger import dataset_id
    from node.store.datasets import dataset_schema

    dataset_schema(args.dataset)
    ledger = _ledger(args)
    dataset, scope_hash = dataset_id(args.dataset), hashlib.sha256((args.scope or "").encode()).digest()
    expires_at = ledger.gateway.block_time() + int(args.days * 86400) if args.days is not None else None
    args.grantee = directory(ledger).resolve(args.grantee, "grantee")
    consent, consent_ref, expires_at = _grant_consent(args, ledger, dataset, scope_hash, expires_at)
    gid = ledger.grant(args.grantee, dataset, Purpose[args.purpose], expires_at=expires_at or ledger.gateway.block_time() + 30 * 86400,
                       scope_hash=scope_hash, consent=consent, consent_ref=consent_ref)
    ref = "0x" + ledger.get_grant(gid).consent_ref.hex()
    emit(args, {"grant_id": gid, "consent_ref": ref}, f"granted: grant {gid} (consent {ref})")
    return 0


def _grant_revoke(args) -> int:
    _ledger(args).revoke(args.grant_id)
    emit(args, {"grant_id": args.grant_id, "revoked": True}, f"revoked grant {args.grant_id}")
    return 0


def _grant_list(args) -> int:
    from node.audit.queries import DATASET_NAMES

    ledger = _ledger(args)
    ids = ledger.grants_received(ledger.address) if args.received else ledger.grants_given(ledger.address)
    grants = [ledger.get_grant(i) for i in ids]
    rows = [{"grant_id": g.grant_id, "owner": g.owner, "grantee": g.grantee,
             "dataset": DATASET_NAMES.get(bytes(g.dataset_id), "0x" + bytes(g.dataset_id).hex()), "purpose": g.purpose.name,
             "expires_at": g.expires_at, "revoked": bool(g.revoked_at), "consent_ref": "0x" + g.consent_ref.hex()} for g in grants]
    if args.json:
        print(json.dumps(rows))
        return 0
    names = directory(ledger)
    columns = ("grant_id", "owner", "grantee", "dataset", "purpose", "expires_at", "revoked")
    print_table("grants received" if args.received else "grants given", columns,
                [[{**r, "owner": names.name_of(r["owner"]), "grantee": names.name_of(r["grantee"])}[c] for c in columns]
                 for r in rows], no_wrap=True)
    return 0


def _consent_target(args) -> tuple[int, str]:
    """(chain id, DataUseAuthorization address) a consent is signed for: from --deployment or the two flags."""
    if args.deployment:
        from node.chain.deployment import Deployment

        dep = Deployment.load(args.deployment)
        return dep.chain_id, dep.contracts["DataUseAuthorization"]
    if args.chain_id is None or not args.contract:
        raise ConsortiumError("a consent is signed for one chain and one contract", reason="bad_argument",
                              hint="pass --deployment deployment.json, or --chain-id and --contract (DataUseAuthorization)")
    return args.chain_id, args.contract


def _consent_terms(args, signer: str, subjects_root: str, directory=None, now: int | None = None):
    """The consent's fields; owner and grantee given as addresses, or as names when a ``directory`` is at hand.

    ``now`` is the chain's block time when a chain is at hand: the contract judges the window by block time,
    so a consent dated by a wall clock behind the chain could expire before its grant starts."""
    from web3 import Web3

    from node.access.consent import Consent, scope_hash
    from node.chain.ledger import dataset_id

    if directory is not None:
        owner, grantee = directory.resolve(args.owner, "owner"), directory.resolve(args.grantee, "grantee")
    else:
        try:
            owner, grantee = Web3.to_checksum_address(args.owner), Web3.to_checksum_address(args.grantee)
        except ValueError:
            raise ConsortiumError("--owner and --grantee are names only with --rpc (to read the registry); "
                                  "otherwise member addresses (0x + 40 hex digits)", reason="bad_argument",
                                  hint="add --rpc URL, or copy addresses from `consortium members`") from None
    return Consent(signer, owner, grantee, "0x" + dataset_id(args.dataset).hex(), int(Purpose[args.purpose]),
                   scope_hash(args.scope or ""), int((now or time.time()) + args.days * 86400), subjects_root)


def _consent_sign(args) -> int:
    from eth_account import Account

    from node.access.consent import sign_consent
    from node.keys import load_member_keys, resolve_passphrase

    chain_id, contract = _consent_target(args)
    subject = load_member_keys(args.subject_keys, resolve_passphrase()).account if args.subject_keys else Account.create()
    names, now = None, None
    if args.rpc:  # names need the registry
        if not args.deployment:
            raise ConsortiumError("--rpc needs --deployment (to find the registry)", reason="bad_argument",
                                  hint="add --deployment deployment.json")
        ledger, _ = connect(args)
        names, now = directory(ledger), ledger.gateway.block_time()
    signed = sign_consent(subject, _consent_terms(args, subject.address, "0x" + "00" * 32, names, now), chain_id, contract)
    Path(args.out).write_text(json.dumps(signed.document(), indent=2))
    emit(args, {"out": args.out, "subject": subject.address}, f"wrote signed consent of {subject.address} to {args.out}")
    return 0


def _consent_batch(args) -> int:
    from node.access.consent import batch_consent_root, sign_consent

    ledger = _ledger(args)  # the collecting member attests with its own key, for its own chain and contract
    root = "0x" + batch_consent_root(_read_json(args.records, "consent records")).hex()
    signed = sign_consent(ledger.account, _consent_terms(args, ledger.address, root, directory(ledger),
                                                         ledger.gateway.block_time()),
                          ledger.gateway.chain_id,
                          ledger.authorizations.address)
    Path(args.out).write_text(json.dumps(signed.document(), indent=2))
    emit(args, {"out": args.out, "signer": ledger.address, "subjects_root": root},
           f"wrote {ledger.address}'s attested consent batch (root {root}) to {args.out}")
    return 0


def _tally(ledger, proposal_id: int, threshold: dict | None = None) -> dict:
    """Votes so far and the votes needed: more than two thirds of the electorate (members not expelled).

    ``threshold``: the one the vote was counted against (read before it: an admission grows the electorate)."""
    p, t = ledger.proposal(proposal_id), threshold or ledger.threshold()
    return {"proposal_id": proposal_id, "candidate": p["candidate"], "name": p["name"], "action": p["action"],
            "votes": p["votes"], "electorate": t["electorate"], "votes_needed": t["votes_needed"],
            "admitted": bool(p["executed"]) and p["action"] == "ADMIT",
            "expelled": bool(p["executed"]) and p["action"] == "EXPEL"}


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
    if t["admitted"] or t["expelled"]:
        outcome = "admitted" if t["admitted"] else "expelled"
        return f"{t['name']} {outcome} with {t['votes']} votes ({t['votes_needed']} needed of {t['electorate']} members)"
    more = max(t["votes_needed"] - t["votes"], 0)
    return (f"{t['votes']} of {t['votes_needed']} votes needed ({t['electorate']} members not expelled, more than two "
            f"thirds must vote); {more} more: each runs `consortium gov vote {t['proposal_id']} --config NODE.toml`")


def _gov(args) -> int:
    from node.chain.ledger import card_reason_hash

    ledger = _ledger(args)
    action = args.gov_command
    if action == "propose":
        candidate = _candidate_address(args.candidate)
        pid = ledger.propose_member(candidate, args.name, Role[args.role], args.endpoint or "")
        tally = _tally(ledger, pid)
        emit(args, tally, f"proposal {pid} opened for {args.name} ({candidate}); {_tally_text(tally)}")
    elif action == "expel":  # expulsion is final and decided by the same supermajority as an admission
        member = directory(ledger).resolve(args.member)
        pid = ledger.propose_expulsion(member, card_reason_hash(args.reason or ""))
        tally = _tally(ledger, pid)
        emit(args, tally, f"proposal {pid} opened to expel {args.member} ({member}); {_tally_text(tally)}")
    elif action == "vote":
        before = ledger.threshold()
        ledger.vote(args.proposal_id)
        tally = _tally(ledger, args.proposal_id, before)
        hint = ""
        if tally["admitted"] and args.fund_ether > 0:  # the consortium pays the newcomer's gas (node/members.py)
            from node.members import fund_new_member

            try:
                tally["funding"] = fund_new_member(ledger.gateway, ledger.account, tally["candidate"], args.fund_ether)
                hint = f"; funded {tally['name']} with {args.fund_ether:g} ether for gas from this member's account"
            except ConsortiumError as exc:  # the vote stands; only the transfer failed
                tally["funding"] = {"error": exc.one_line()}
                hint = f"; NOT funded: {exc.one_line()}"
        emit(args, tally, f"vote cast on proposal {args.proposal_id}: {_tally_text(tally)}{hint}")
    elif action in ("warn", "suspend", "reinstate"):
        member = directory(ledger).resolve(args.member)
        getattr(ledger, action)(member, card_reason_hash(args.reason or ""))
        emit(args, {"member": member, "action": action}, f"{action}: {args.member} ({member})")
    elif action == "endpoint":
        ledger.set_endpoint(args.url)
        emit(args, {"endpoint": args.url}, f"endpoint set to {args.url}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    def common(p):
        config_option(p)
        json_option(p)
        return p

    grant = sub.add_parser("grant", help="grant, revoke and list data-use authorizations").add_subparsers(dest="grant_command", required=True)
    create = common(grant.add_parser("create", help="grant a member the use of a dataset for a purpose"))
    create.add_argument("--grantee", required=True)
    create.add_argument("--dataset", required=True)
    create.add_argument("--purpose", required=True, choices=PURPOSE_NAMES)
    create.add_argument("--days", type=float, help="validity in days (default: as long as the consent, or 30)")
    create.add_argument("--scope", help="scope document (its SHA-256 goes on chain; must equal the consent's)")
    create.add_argument("--consent-file", help="a signed consent (`consent sign` / `consent batch`) naming exactly this "
                                               "grant, or a JSON list of your own consent records (this member attests them)")
    create.add_argument("--consent-ref", help="hash (32 bytes hex) of your own consent record or legal basis: "
                                              "this member attests it for exactly this grant")
    create.set_defaults(func=_grant_create)
    revoke = common(grant.add_parser("revoke", help="revoke a grant"))
    revoke.add_argument("grant_id", type=int)
    revoke.set_defaults(func=_grant_revoke)
    listing = common(grant.add_parser("list", help="grants given (default) or received"))
    listing.add_argument("--received", action="store_true")
    listing.set_defaults(func=_grant_list)

    def terms(p):
        for name in ("--owner", "--grantee", "--dataset", "--out"):
            p.add_argument(name, required=True)
        p.add_argument("--purpose", required=True, choices=PURPOSE_NAMES)
        p.add_argument("--scope", help="the scope document consented to (the grant must carry the same)")
        p.add_argument("--days", type=float, default=365, help="the consent's validity; no grant outlives it")
        return p

    consent = sub.add_parser("consent", help="consents bound to one grant").add_subparsers(dest="consent_command", required=True)
    sign = terms(consent.add_parser("sign", help="sign a data subject's EIP-712 consent to one grant"))
    sign.add_argument("--deployment", type=Path, help="the consortium's deployment.json (chain id and contract)")
    sign.add_argument("--chain-id", type=int)
    sign.add_argument("--contract", help="the DataUseAuthorization address (with --chain-id, instead of --deployment)")
    sign.add_argument("--rpc", help="a chain RPC URL, to accept member names for --owner/--grantee (with --deployment)")
    sign.add_argument("--subject-keys", help="the subject's key folder (default: a fresh throwaway subject key)")
    json_option(sign)
    sign.set_defaults(func=_consent_sign)
    batch = common(terms(consent.add_parser("batch", help="attest, as the collecting member, a batch of subjects' consent "
                                                          "records for one grant")))
    batch.add_argument("--records", required=True, help="JSON list of the subjects' consent records")
    batch.set_defaults(func=_consent_batch)

    gov = sub.add_parser("gov", help="consortium governance").add_subparsers(dest="gov_command", required=True)
    p = common(gov.add_parser("propose", help="propose a new member"))
    p.add_argument("--candidate", required=True, help="the new member's address or its key folder")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=ROLE_NAMES)
    p.add_argument("--endpoint")
    p.set_defaults(func=_gov)
    v = common(gov.add_parser("vote", help="vote for a proposal"))
    v.add_argument("proposal_id", type=int)
    v.add_argument("--fund-ether", type=float, default=1.0,
                   help="if this vote admits the candidate, send it this much ether for gas (0: a zero-gas-price chain)")
    v.set_defaults(func=_gov)
    for action in ("warn", "suspend", "reinstate", "expel"):
        c = common(gov.add_parser(action, help="propose expelling a member (decided by vote)" if action == "expel"
                                  else f"{action} a member (regulator only)"))
        c.add_argument("member")
        c.add_argument("--reason", default="")
        c.set_defaults(func=_gov)
    e = common(gov.add_parser("endpoint", help="change this member's node endpoint"))
    e.add_argument("url")
    e.set_defaults(func=_gov)
