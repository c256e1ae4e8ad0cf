"""`consortium pool ...`: the risk pool (open, join, ratio, loss, contribute, confirm, show) and mutual aid (`pool aid ...`).

Every money event is a transaction signed with the member's key (--keys); reads need only --rpc and
--deployment. Amounts are whole numbers of the smallest currency unit. Payments themselves happen off
chain: the payer records the payment's reference (hashed), the payee confirms it with its own transaction.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from node.cli.options import chain_command, connect, directory, emit
from node.errors import ConsortiumError
from node.pools.mutual_aid import (
    RULES,
    build_apportionment,
    check_published_shares,
    read_participants,
    read_proof_line,
    verify_participant,
    write_apportionment,
)
from node.pools.refs import PoolInputError, amount, hex32, payment_ref, pool_id, weights

LOSS_KINDS = {1: "APPROVED_CLAIM", 2: "FRAUD_FINDING"}
PAYMENT_STATES = {0: "NONE", 1: "OWED", 2: "RECORDED", 3: "CONFIRMED"}
PAYOUT_STATES = {1: "ANCHORED", 2: "PAID", 3: "CONFIRMED"}


def _signer(args):
    """(ledger signed with this member's key, member directory)."""
    ledger, _ = connect(args, signed=True)
    return ledger, directory(ledger)


def _reader(args):
    """(read-only ledger, member directory)."""
    ledger, _ = connect(args)
    return ledger, directory(ledger)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


# ------------------------------------------------------------------------------------------ risk pool


def _cmd_open(args) -> int:
    ledger, directory = _signer(args)
    members, weights = [], []
    for spec in args.member:
        name, _, weight = spec.rpartition(":")
        if not name or not weight.isdigit() or int(weight) <= 0:
            raise PoolInputError(f"--member takes NAME:WEIGHT, got {spec!r}", hint="e.g. --member insurer-a:70 --member insurer-b:30")
        members.append(directory.resolve(name))
        weights.append(int(weight))
    if ledger.address not in members:
        if not args.own_weight or args.own_weight <= 0:
            raise PoolInputError("this member opens the pool and must be in it with a weight",
                                 hint="list yourself with --member NAME:WEIGHT (or pass --own-weight)")
        members.insert(0, ledger.address)
        weights.insert(0, args.own_weight)
    pid = pool_id(args.pool)
    receipt = ledger.open_pool(pid, members, weights, amount(args.cap, "--cap"), int(args.period_days * 86_400))
    result = {"pool": args.pool, "pool_id": _hex(pid), "members": [directory.name_of(m) for m in members], "weights": weights,
              "cap_per_period": args.cap, "period_days": args.period_days, "block_number": receipt["blockNumber"]}
    return emit(args, result, f"pool {args.pool} opened among {', '.join(result['members'])} at "
                  f"{':'.join(map(str, weights))}; the others must `consortium pool join {args.pool}`")


def _cmd_join(args) -> int:
    ledger, _ = _signer(args)
    ledger.join_pool(pool_id(args.pool))
    active = ledger.get_pool(pool_id(args.pool))["active"]
    return emit(args, {"pool": args.pool, "active": active},
                  f"joined pool {args.pool}" + ("; every member has joined: it takes losses now" if active else ""))


def _cmd_ratio(args) -> int:
    ledger, _ = _signer(args)
    pid = pool_id(args.pool)
    if args.approve is not None:
        changed = ledger.approve_ratio(pid, args.approve)
        proposal = args.approve
    else:
        proposal = ledger.propose_ratio(pid, weights(args.ratio or ""))
        changed = False  # a pool has at least two members, and every one of them must approve
    pool = ledger.get_pool(pid)
    result = {"pool": args.pool, "proposal": proposal, "in_effect": changed, "weights": pool["weights"]}
    state = (f"in effect: {':'.join(map(str, pool['weights']))}" if changed
             else f"waiting for every member (`consortium pool ratio {args.pool} --approve {proposal}`)")
    return emit(args, result, f"ratio proposal {proposal} of pool {args.pool}: {state}")


def _cmd_loss(args) -> int:
    from node.evidence.leaf import check_claim_id, claim_id_hash
    ledger, directory = _signer(args)
    finding = bytes(32)
    if args.finding_file:
        try:
            finding = hashlib.sha256(Path(args.finding_file).read_bytes()).digest()
        except OSError as exc:
            raise ConsortiumError(f"cannot read {args.finding_file}: {exc.strerror}", reason="bad_argument") from None
    loss = ledger.report_loss(pool_id(args.pool), claim_id_hash(check_claim_id(args.claim)), amount(args.amount),
                              hex32(args.evidence_root, "--evidence-root"), finding)
    shares = {directory.name_of(m): a for m, a in loss["shares"].items()}
    result = {"loss_id": _hex(loss["loss_id"]), "claim": args.claim, "reported": args.amount, "shared": loss["shared"],
              "period": loss["period"], "shares": shares, "block_number": loss["block_number"]}
    split = ", ".join(f"{n} {a}" for n, a in shares.items())
    return emit(args, result, f"loss {result['loss_id']} of claim {args.claim}: {loss['shared']} of {args.amount} shared "
                  f"in period {loss['period']}: {split}")


def _cmd_contribute(args) -> int:
    ledger, directory = _signer(args)
    lid = hex32(args.loss_id, "loss id")
    ledger.record_contribution(lid, payment_ref(args.ref))
    share, _ = ledger.loss_share(lid, ledger.address)
    payee = directory.name_of(ledger.get_loss(lid)["insurer"])
    return emit(args, {"loss_id": args.loss_id, "amount": share, "payee": payee, "state": "RECORDED"},
                  f"recorded payment of {share} to {payee} for loss {args.loss_id}; {payee} confirms on receipt")


def _cmd_confirm(args) -> int:
    ledger, directory = _signer(args)
    lid = hex32(args.loss_id, "loss id")
    payer = directory.resolve(args.payer)
    ledger.confirm_contribution(lid, payer)
    share, _ = ledger.loss_share(lid, payer)
    return emit(args, {"loss_id": args.loss_id, "payer": directory.name_of(payer), "amount": share, "state": "CONFIRMED"},
                  f"confirmed receipt of {share} from {directory.name_of(payer)} for loss {args.loss_id}")


def _cmd_show(args) -> int:
    ledger, directory = _reader(args)
    pid = pool_id(args.pool)
    pool = ledger.get_pool(pid)
    now = ledger.gateway.block_time()
    period = ledger.pool_period(pid, now)
    result = {"pool": args.pool, "pool_id": _hex(pid), "active": pool["active"],
              "members": {directory.name_of(m): w for m, w in zip(pool["members"], pool["weights"])},
              "ratio_version": pool["ratio_version"], "cap_per_period": pool["cap_per_period"],
              "period_days": pool["period_seconds"] / 86_400, "period": period["period"], "shared_this_period": period["shared"]}
    ratio = ":".join(f"{n} {w}" for n, w in result["members"].items())
    return emit(args, result, f"pool {args.pool} ({'active' if pool['active'] else 'waiting for members to join'}): {ratio} "
                  f"(ratio v{pool['ratio_version']}); period {period['period']}: {period['shared']} of "
                  f"{pool['cap_per_period']} shared")


def _cmd_loss_show(args) -> int:
    ledger, directory = _reader(args)
    lid = hex32(args.loss_id, "loss id")
    loss = ledger.get_loss(lid)
    pool = ledger.get_pool(loss["pool_id"])
    shares = {}
    for m in pool["members"]:
        amount_, state = ledger.loss_share(lid, m)
        shares[directory.name_of(m)] = {"amount": amount_, "payment": PAYMENT_STATES[state]}
    result = {"loss_id": args.loss_id, "insurer": directory.name_of(loss["insurer"]), "kind": LOSS_KINDS[loss["kind"]],
              "reported": loss["reported"], "shared": loss["shared"], "period": loss["period"],
              "ratio_version": loss["ratio_version"], "shares": shares}
    lines = [f"loss {args.loss_id}: {result['kind']} of {result['insurer']}, {loss['shared']} of {loss['reported']} shared "
             f"(period {loss['period']}, ratio v{loss['ratio_version']})"]
    lines += [f"  {n:<20} {s['amount']:>15}  {s['payment']}" for n, s in shares.items()]
    return emit(args, result, "\n".join(lines))


# ------------------------------------------------------------------------------------------ mutual aid


def _cmd_aid_apportion(args) -> int:
    from node.evidence.leaf import check_claim_id, claim_id_hash
    participants = read_participants(args.participants, args.rule)
    apportionment = build_apportionment(participants, amount(args.payout, "--payout"), args.rule)
    ledger, directory = _signer(args)
    key = ledger.anchor_apportionment(claim_id_hash(check_claim_id(args.claim)), hex32(args.evidence_root, "--evidence-root"),
                                      apportionment.payout, apportionment.tree.size, RULES[args.rule],
                                      apportionment.tree.root_hash, hashlib.sha256(apportionment.share_list()).digest(),
                                      directory.resolve(args.payee, "payee"))
    summary = write_apportionment(args.out, apportionment, key)
    return emit(args, summary, f"claim {args.claim}: payout {summary['payout']} apportioned ({args.rule}) across "
                  f"{summary['participants']} participants; root {summary['share_root']} anchored under claim key "
                  f"{summary['claim_key']}; files in {args.out} (publish shares.csv, give each participant its line of proofs.jsonl)")


def _cmd_aid_verify(args) -> int:
    ledger, _ = connect(args)
    on_chain = ledger.get_apportionment(hex32(args.claim_key, "claim key"))
    result = verify_participant(read_proof_line(args.proof, args.participant), args.participant, on_chain)
    return emit(args, result, f"VALID: {args.participant}'s share is {result['share']} of the anchored payout "
                  f"{result['payout']} across {result['participants']} participants")


def _cmd_aid_check(args) -> int:
    ledger, _ = connect(args)
    on_chain = ledger.get_apportionment(hex32(args.claim_key, "claim key"))
    result = check_published_shares(args.shares, on_chain)
    return emit(args, result, f"VALID: {result['participants']} shares sum to the anchored payout {result['payout']} "
                  "and rebuild the anchored root")


def _cmd_aid_payout(args) -> int:
    ledger, directory = _signer(args)
    key = hex32(args.claim_key, "claim key")
    ledger.record_payout(key, payment_ref(args.ref))
    a = ledger.get_apportionment(key)
    return emit(args, {"claim_key": args.claim_key, "payout": a["payout"], "payee": a["payee"], "state": "PAID"},
                  f"recorded payout of {a['payout']} to {directory.name_of(a['payee'])}; the payee confirms on receipt")


def _cmd_aid_confirm(args) -> int:
    ledger, _ = _signer(args)
    key = hex32(args.claim_key, "claim key")
    ledger.confirm_payout(key)
    a = ledger.get_apportionment(key)
    return emit(args, {"claim_key": args.claim_key, "payout": a["payout"], "state": PAYOUT_STATES[a["state"]]},
                  f"confirmed receipt of the payout {a['payout']}")


def register(sub) -> None:
    pool = sub.add_parser("pool", help="risk pool and mutual aid: shared losses, apportioned payouts").add_subparsers(
        dest="pool_command", required=True)

    p = chain_command(pool, "open",
                      "open a risk pool among members with an agreed ratio and a cap per period", _cmd_open, keys=True)
    p.add_argument("pool", help="the pool's name")
    p.add_argument("--member", action="append", required=True, metavar="NAME:WEIGHT", help="a member and its weight (repeat)")
    p.add_argument("--own-weight", type=int, help="this member's weight when it is not listed with --member")
    p.add_argument("--cap", required=True, help="most shared per period, smallest currency unit")
    p.add_argument("--period-days", type=float, default=30.0)

    p = chain_command(pool, "join", "join a pool this member is listed in", _cmd_join, keys=True)
    p.add_argument("pool")

    p = chain_command(pool, "ratio",
                      "propose a new ratio (e.g. 40:60), or --approve a proposal; all members must agree", _cmd_ratio, keys=True)
    p.add_argument("pool")
    p.add_argument("ratio", nargs="?", help="weights in the pool's member order, e.g. 40:60")
    p.add_argument("--approve", type=int, metavar="PROPOSAL")

    p = chain_command(pool, "loss", "report a confirmed loss on this member's claim (evidence anchored; approved, or "
                      "rejected with a fraud finding)", _cmd_loss, keys=True)
    p.add_argument("pool")
    p.add_argument("--claim", required=True, help="the claim id")
    p.add_argument("--amount", required=True, help="the loss, smallest currency unit")
    p.add_argument("--evidence-root", required=True, help="root of an evidence batch this member anchored for the claim")
    p.add_argument("--finding-file", help="the fraud finding report (its SHA-256 goes on chain); needed for a rejected claim")

    p = chain_command(pool, "contribute",
                      "record that this member paid its share of a loss (off chain) under --ref", _cmd_contribute, keys=True)
    p.add_argument("loss_id")
    p.add_argument("--ref", required=True, help="the payment's bank or ledger reference (hashed on chain)")

    p = chain_command(pool, "confirm",
                      "the insurer of a loss confirms it received a member's contribution", _cmd_confirm, keys=True)
    p.add_argument("loss_id")
    p.add_argument("--payer", required=True, help="member name or address")

    p = chain_command(pool, "show", "a pool's members, ratio, cap and what this period shared", _cmd_show)
    p.add_argument("pool")

    p = chain_command(pool, "loss-show", "a loss, each member's share and the state of its payment", _cmd_loss_show)
    p.add_argument("loss_id")

    aid = pool.add_parser("aid", help="mutual aid: one approved claim's payout apportioned across participants").add_subparsers(
        dest="aid_command", required=True)
    p = chain_command(aid, "apportion",
                      "apportion and anchor the payout of this member's approved claim", _cmd_aid_apportion, keys=True)
    p.add_argument("--claim", required=True)
    p.add_argument("--payout", required=True, help="smallest currency unit")
    p.add_argument("--participants", required=True, help="CSV: participant_id[,weight]")
    p.add_argument("--rule", choices=("equal", "pro_rata"), default="equal")
    p.add_argument("--evidence-root", required=True, help="root of an evidence batch this member anchored for the claim")
    p.add_argument("--payee", required=True, help="who receives the payout and confirms it (address or member name)")
    p.add_argument("--out", required=True, help="folder for shares.csv, proofs.jsonl, apportionment.json")

    p = chain_command(aid, "verify",
                      "a participant checks its own share against the chain (exit 1 when invalid)", _cmd_aid_verify)
    p.add_argument("claim_key")
    p.add_argument("--participant", required=True, help="your participant id")
    p.add_argument("--proof", required=True, help="your proof line (or the proofs.jsonl holding it)")

    p = chain_command(aid, "check",
                      "anyone: the published share list sums to the anchored payout and rebuilds the root", _cmd_aid_check)
    p.add_argument("claim_key")
    p.add_argument("--shares", required=True, help="the published shares.csv")

    p = chain_command(aid, "payout",
                      "the organiser records the payout to the payee (off chain) under --ref", _cmd_aid_payout, keys=True)
    p.add_argument("claim_key")
    p.add_argument("--ref", required=True)

    p = chain_command(aid, "confirm", "the payee confirms it received the payout", _cmd_aid_confirm, keys=True)
    p.add_argument("claim_key")
