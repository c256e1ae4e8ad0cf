"""`consortium settle ...`: data offers and certificates, revenue-share agreements, statements and payments.

Every command acts on chain with the member's own key (settings from --config); every money event
(purchase, statement, confirmation, dispute, payment, receipt, settlement) is a transaction. Statements
are computed here from the chain (node/settlement) and confirmed only when reproduced exactly.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from node.cli.options import command, connect, directory, emit
from node.enums import PURPOSE_NAMES, Purpose
from node.errors import ConsortiumError

SOURCES = ("ACCESSES", "ROWS", "CONTRIBUTIONS", "DECLARED")
FIGURES = ("PREMIUM", "TRAFFIC", "VALUE", "COST")


def _ledger(args):
    return connect(args, signed=True)


def _book(args):
    from node.settlement.book import SettlementBook

    ledger, deployment = _ledger(args)
    return ledger, SettlementBook(ledger, from_block=deployment.deployment_block)


def _member(ledger, name: str, what: str) -> str:
    return directory(ledger).resolve(name, what)


def _hash_of(text: str | None) -> bytes:
    """A reference given as 0x + 64 hex digits is taken as is; any other text is hashed (SHA-256)."""
    if not text:
        return bytes(32)
    if text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    return hashlib.sha256(text.encode()).digest()


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer (amounts are in the smallest currency unit)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return number


# ---------------------------------------------------------------------- offers and certificates

def _offer(args) -> int:
    from node.chain.ledger import dataset_id
    from node.store.datasets import dataset_schema

    dataset_schema(args.dataset)
    ledger, _ = _ledger(args)
    offer_id = ledger.publish_offer(dataset_id(args.dataset), Purpose[args.purpose], term=int(args.days * 86400),
                                    period_fee=args.period_fee, per_access_price=args.per_access,
                                    per_row_price=args.per_row, per_contribution_price=args.per_contribution,
                                    revenue_share_bps=args.share_bps, scope_hash=hashlib.sha256((args.scope or "").encode()).digest(),
                                    consent_ref=_hash_of(args.consent_ref))
    return emit(args, {"offer_id": offer_id, **ledger.get_offer(offer_id)},
                f"offer {offer_id} published: {args.dataset} for {args.purpose}, {args.days:g} days")


def _buy(args) -> int:
    ledger, _ = _ledger(args)
    bought = ledger.buy_offer(args.offer_id)
    return emit(args, bought, f"certificate {bought['certificate_id']} issued; grant {bought['grant_id']} "
                              f"valid until {bought['expires_at']}")


def _revoke(args) -> int:
    ledger, _ = _ledger(args)
    ledger.revoke_certificate(args.certificate_id, _hash_of(args.reason))
    return emit(args, {"certificate_id": args.certificate_id, "revoked": True},
                f"certificate {args.certificate_id} revoked (its grant too)")


def _certificates(args) -> int:
    ledger, deployment = _ledger(args)
    me = ledger.address
    ids = [e["args"]["certificateId"] for e in ledger.gateway.events("DataMarket", "CertificateIssued",
                                                                     from_block=deployment.deployment_block)]
    rows = []
    for cid in ids:
        c = ledger.get_certificate(cid)
        if me in (c["holder"], c["owner"]):
            rows.append({**c, "valid": ledger.certificate_valid(cid), "role": "holder" if c["holder"] == me else "owner"})
    if args.json:
        print(json.dumps({"certificates": rows}))
        return 0
    if not rows:
        print("no certificates held or sold by this member")
    for r in rows:
        print(f"certificate {r['certificate_id']} ({r['role']}): offer {r['offer_id']}, grant {r['grant_id']}, "
              f"holder {r['holder']}, owner {r['owner']}, {'valid' if r['valid'] else 'not valid'}")
    return 0


# ---------------------------------------------------------------------- agreements and figures

def _agree(args) -> int:
    from node.settlement.formula import Formula, Source

    ledger, _ = _ledger(args)
    try:
        formula = Formula(args.base_bps, args.share_bps, args.traffic_weight, args.value_weight, args.cost_weight,
                          Source[args.traffic_source], Source[args.value_source], Source[args.cost_source])
    except ValueError as exc:
        raise ConsortiumError(str(exc), reason="bad_argument", hint="weights are basis points summing to 10000") from None
    payer = _member(ledger, args.payer, "payer") if args.payer else ledger.address
    providers = [_member(ledger, p, "provider") for p in args.provider]
    start = args.start if args.start is not None else ledger.gateway.block_time()
    aid = ledger.propose_agreement(payer, providers, formula, period_start=start, period_seconds=int(args.period_days * 86400),
                                   dispute_window=int(args.window_days * 86400))
    return emit(args, ledger.get_agreement(aid), f"agreement {aid} proposed; each other party accepts with "
                                                 f"`consortium settle accept {aid}`")


def _accept(args) -> int:
    ledger, _ = _ledger(args)
    ledger.accept_agreement(args.agreement_id)
    a = ledger.get_agreement(args.agreement_id)
    return emit(args, a, f"agreement {args.agreement_id} accepted ({'active' if a['state'] == 2 else 'awaiting other parties'})")


def _declare(args) -> int:
    from node.settlement.formula import Figure

    ledger, _ = _ledger(args)
    provider = _member(ledger, args.provider, "provider") if args.provider else ledger.address
    try:
        evidence = hashlib.sha256(Path(args.evidence).read_bytes()).digest() if args.evidence else bytes(32)
    except OSError as exc:
        raise ConsortiumError(f"cannot read the evidence file {args.evidence}: {exc.strerror}", reason="bad_argument",
                              hint="pass the document the figure rests on") from None
    ledger.declare_figure(args.agreement_id, args.period, provider, Figure[args.figure], args.value, evidence)
    return emit(args, {"agreement_id": args.agreement_id, "period": args.period, "provider": provider, "figure": args.figure,
                       "value": args.value, "evidence_hash": "0x" + evidence.hex()},
                f"{args.figure} = {args.value} declared for {provider}, agreement {args.agreement_id} period {args.period}")


# ---------------------------------------------------------------------- statements and payments

def _statement(args) -> int:
    ledger, book = _book(args)
    computed = book.issue(args.agreement_id, args.period) if args.issue else book.compute(args.agreement_id, args.period)
    doc = computed.document()
    on_chain = ledger.get_statement(args.agreement_id, args.period)
    doc["on_chain"] = {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in on_chain.items()}
    doc["matches_chain"] = on_chain["state"] != "NONE" and on_chain["inputs_hash"] == computed.inputs_hash \
        and on_chain["amounts"] == computed.amounts
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"agreement {args.agreement_id} period {args.period}: total {doc['total']} "
          f"(inputs hash {doc['inputs_hash']}){' issued' if args.issue else ''}; on chain: {on_chain['state']}")
    for line in doc["lines"]:
        print(f"  {line['provider']}: certificates {line['certificate_charges']} + base {line['base_commission']} "
              f"+ data value {line['data_value_share']} = {line['total']}")
    return 0


def _confirm(args) -> int:
    ledger, book = _book(args)
    book.confirm(args.agreement_id, args.period)
    s = ledger.get_statement(args.agreement_id, args.period)
    return emit(args, {"agreement_id": args.agreement_id, "period": args.period, "state": s["state"]},
                f"statement of agreement {args.agreement_id} period {args.period} reproduced and confirmed ({s['state']})")


def _dispute(args) -> int:
    ledger, _ = _ledger(args)
    ledger.dispute_statement(args.agreement_id, args.period, _hash_of(args.reason))
    return emit(args, {"agreement_id": args.agreement_id, "period": args.period, "state": "DISPUTED"},
                f"statement of agreement {args.agreement_id} period {args.period} disputed")


def _pay(args) -> int:
    ledger, _ = _ledger(args)
    payee = _member(ledger, args.payee, "payee")
    ledger.record_payment(args.agreement_id, args.period, payee, _hash_of(args.reference))
    return emit(args, {"agreement_id": args.agreement_id, "period": args.period, "payee": payee, "recorded": True},
                f"payment to {payee} recorded; the payee confirms it with `consortium settle received`")


def _received(args) -> int:
    ledger, _ = _ledger(args)
    ledger.confirm_payment(args.agreement_id, args.period)
    s = ledger.get_statement(args.agreement_id, args.period)
    return emit(args, {"agreement_id": args.agreement_id, "period": args.period, "state": s["state"]},
                f"payment received confirmed; period {args.period} is {s['state']}")


def register(sub: argparse._SubParsersAction) -> None:
    settle = sub.add_parser("settle", help="data offers, certificates, revenue-share statements and payments")
    cmds = settle.add_subparsers(dest="settle_command", required=True)

    def common(name, help_text, func):
        return command(cmds, name, help_text, func)

    def period(p):
        p.add_argument("agreement_id", type=int)
        p.add_argument("period", type=int)
        return p

    p = common("offer", "publish an offer for one of this member's datasets", _offer)
    p.add_argument("--dataset", required=True)
    p.add_argument("--purpose", required=True, choices=PURPOSE_NAMES)
    p.add_argument("--days", type=float, default=30, help="term of each certificate (and its grant)")
    for flag, text in (("--period-fee", "per settlement period"), ("--per-access", "per access record"),
                       ("--per-row", "per row served"), ("--per-contribution", "per statistics contribution")):
        p.add_argument(flag, type=_non_negative, default=0, help=f"price {text}, smallest currency unit")
    p.add_argument("--share-bps", type=_non_negative, default=0, help="data-value share asked, basis points")
    p.add_argument("--scope", help="scope document (its SHA-256 goes on chain)")
    p.add_argument("--consent-ref", help="your consent record / legal basis for selling this use (hashed unless 0x+64 hex)")
    common("buy", "buy an offer: a certificate and its grant", _buy).add_argument("offer_id", type=int)
    p = common("revoke", "revoke a certificate you sold (and its grant)", _revoke)
    p.add_argument("certificate_id", type=int)
    p.add_argument("--reason")
    common("certificates", "certificates this member holds or sold", _certificates)
    p = common("agree", "propose a revenue-share agreement (you are the payer or a provider)", _agree)
    p.add_argument("--payer", help="the paying member (default: you)")
    p.add_argument("--provider", action="append", required=True, help="a provider member (repeat)")
    p.add_argument("--base-bps", type=_non_negative, required=True, help="base commission on attributable premium")
    p.add_argument("--share-bps", type=_non_negative, required=True, help="data-value share of attributable premium")
    p.add_argument("--traffic-weight", type=_non_negative, default=5000)
    p.add_argument("--value-weight", type=_non_negative, default=3000)
    p.add_argument("--cost-weight", type=_non_negative, default=2000)
    p.add_argument("--traffic-source", choices=SOURCES, default="ACCESSES")
    p.add_argument("--value-source", choices=SOURCES, default="DECLARED")
    p.add_argument("--cost-source", choices=SOURCES, default="DECLARED")
    p.add_argument("--start", type=int, help="start of period 0, unix seconds (default: now)")
    p.add_argument("--period-days", type=float, default=30)
    p.add_argument("--window-days", type=float, default=7, help="days to confirm or dispute a statement")
    common("accept", "accept a proposed agreement", _accept).add_argument("agreement_id", type=int)
    p = period(common("declare", "declare a figure for a period (PREMIUM/VALUE: payer; TRAFFIC/COST: the provider)", _declare))
    p.add_argument("--figure", required=True, choices=FIGURES)
    p.add_argument("--value", type=_non_negative, required=True)
    p.add_argument("--provider", help="the provider the figure is about (default: you)")
    p.add_argument("--evidence", help="the evidence document (its SHA-256 goes on chain)")
    p = period(common("statement", "compute a period's statement from the chain (and --issue it)", _statement))
    p.add_argument("--issue", action="store_true", help="post its inputs hash and amounts on chain")
    period(common("confirm", "confirm a statement after reproducing it exactly", _confirm))
    period(common("dispute", "dispute a statement", _dispute)).add_argument("--reason")
    p = period(common("pay", "record the off-chain payment of a provider's confirmed amount (payer)", _pay))
    p.add_argument("--payee", required=True)
    p.add_argument("--reference", required=True, help="the payment reference (hashed unless 0x + 64 hex)")
    period(common("received", "confirm a recorded payment was received (payee); the last one settles the period", _received))
