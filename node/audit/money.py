"""Money events folded into the tables of the regulator's Settlement and Pools pages and a member's own view.

Pure code over the index's events (``queries.money_events``: oldest first): what a contract holds in
storage is rebuilt from its events, the way an auditor would, so every row shown is backed by events
on chain. A statement's state follows Settlement.sol: ISSUED, then DISPUTED (a party refused it; a new
revision may follow) or CONFIRMED (every party confirmed the current revision), then PAID (the payer
recorded every non-zero line, receipts pending: this state is ours, the contract keeps it as
CONFIRMED) and SETTLED (every payee confirmed receipt). A pool share is "borne" by the insurer itself,
"owed" by the others until recorded and then confirmed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from node.audit.queries import iso
from node.chain.deployment import Purpose
from node.errors import ConsortiumError

LOSS_KINDS = {1: "approved claim", 2: "fraud finding"}
AID_RULES = {1: "equal", 2: "pro rata"}
CSV_TABLES = {
    "settlement": {
        "offers": ["offer_id", "owner", "dataset", "purpose", "term_days", "period_fee", "per_access_price", "per_row_price",
                   "per_contribution_price", "revenue_share_bps", "published", "state", "block", "tx_hash"],
        "certificates": ["certificate_id", "offer_id", "holder", "owner", "grant_id", "issued", "expires", "revoked", "state",
                         "block", "tx_hash"],
        "statements": ["agreement_id", "period", "payer", "revision", "state", "total", "lines", "issuer", "issued",
                       "inputs_hash", "block", "tx_hash"],
        "disputes": ["agreement_id", "period", "revision", "party", "reason_hash", "time", "block", "tx_hash"],
    },
    "pools": {
        "pools": ["pool_id", "opener", "members", "weights", "cap_per_period", "period_days", "active", "ratio_version", "block"],
        "losses": ["loss_id", "pool_id", "insurer", "kind", "reported", "shared", "period", "shares", "time", "block", "tx_hash"],
        "contributions": ["loss_id", "payer", "payee", "amount", "state", "payment_ref", "time", "block", "tx_hash"],
        "aid": ["claim_key", "organiser", "payout", "participants", "rule", "share_root", "payee", "state", "paid_by", "time",
                "block", "tx_hash"],
    },
}


class MoneyFilterError(ConsortiumError):
    reason = "invalid_filter"


def _purpose(value: int) -> str:
    try:
        return Purpose(value).name
    except ValueError:
        return str(value)


def _where(e: dict) -> dict:
    return {"block": e["block"], "tx_hash": e["tx_hash"], "time": e["time"], "ts": e["ts"]}


# ---------------------------------------------------------------------- settlement


@dataclass
class SettlementView:
    offers: list[dict] = field(default_factory=list)
    certificates: list[dict] = field(default_factory=list)
    agreements: list[dict] = field(default_factory=list)
    statements: list[dict] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)


def fold_settlement(events: list[dict]) -> SettlementView:
    offers: dict[int, dict] = {}
    certs: dict[int, dict] = {}
    agreements: dict[int, dict] = {}
    statements: dict[tuple[int, int], dict] = {}
    disputes: list[dict] = []
    for e in events:
        a, name = e["args"], e["event"]
        if name == "OfferPublished":
            t = a["terms"]
            offers[a["offerId"]] = {"offer_id": a["offerId"], "owner": a["owner"], "dataset": t["datasetId"],
                                    "purpose": _purpose(a["purpose"]), "term_days": t["term"] / 86_400,
                                    "period_fee": t["periodFee"], "per_access_price": t["perAccessPrice"],
                                    "per_row_price": t["perRowPrice"], "per_contribution_price": t["perContributionPrice"],
                                    "revenue_share_bps": t["revenueShareBps"], "published": e["time"], "state": "open", **_where(e)}
        elif name == "OfferWithdrawn" and a["offerId"] in offers:
            offers[a["offerId"]]["state"] = "withdrawn"
        elif name == "CertificateIssued":
            certs[a["certificateId"]] = {"certificate_id": a["certificateId"], "offer_id": a["offerId"], "holder": a["holder"],
                                         "owner": a["owner"], "grant_id": a["grantId"], "issued": e["time"],
                                         "expires_at": a["expiresAt"], "revoked": None, "revoked_by": None, **_where(e)}
        elif name == "CertificateRevoked" and a["certificateId"] in certs:
            certs[a["certificateId"]].update(revoked=e["time"], revoked_by=a["by"])
        elif name == "AgreementProposed":
            agreements[a["agreementId"]] = {"agreement_id": a["agreementId"], "payer": a["payer"], "providers": a["providers"],
                                            "period_start": a["periodStart"], "period_seconds": a["periodSeconds"],
                                            "dispute_window": a["disputeWindow"], "formula": a["formula"],
                                            "state": "proposed", **_where(e)}
        elif name == "AgreementActivated" and a["agreementId"] in agreements:
            agreements[a["agreementId"]]["state"] = "active"
        elif name == "StatementIssued":
            ag = agreements.get(a["agreementId"], {"payer": None, "providers": []})
            key = (a["agreementId"], a["period"])
            before = statements.get(key)
            lines = [{"provider": p, "amount": amount, "payment": "none"} for p, amount in zip(ag["providers"], a["amounts"])]
            statements[key] = {"agreement_id": a["agreementId"], "period": a["period"], "payer": ag["payer"],
                               "parties": 1 + len(ag["providers"]), "revision": a["revision"], "issuer": a["issuer"],
                               "issued": e["time"], "inputs_hash": a["inputsHash"], "total": a["total"], "amounts": lines,
                               "confirmed_by": [], "state": "issued", "disputes": before["disputes"] if before else 0,
                               **_where(e)}
        elif name == "StatementConfirmed":
            st = statements.get((a["agreementId"], a["period"]))
            if st and st["revision"] == a["revision"]:
                st["confirmed_by"].append(a["party"])
                if len(st["confirmed_by"]) == st["parties"]:
                    st["state"] = "confirmed"
        elif name == "StatementDisputed":
            st = statements.get((a["agreementId"], a["period"]))
            if st:
                st["state"], st["disputes"] = "disputed", st["disputes"] + 1
            disputes.append({"agreement_id": a["agreementId"], "period": a["period"], "revision": a["revision"],
                             "party": a["party"], "reason_hash": a["reasonHash"],
                             "payer": st["payer"] if st else None,
                             "providers": [x["provider"] for x in st["amounts"]] if st else [], **_where(e)})
        elif name in ("PaymentRecorded", "PaymentReceived"):
            st = statements.get((a["agreementId"], a["period"]))
            for line in st["amounts"] if st else []:
                if line["provider"] == a["payee"]:
                    line["payment"] = "recorded" if name == "PaymentRecorded" else "received"
            if st and st["state"] == "confirmed" and all(x["payment"] != "none" for x in st["amounts"] if x["amount"] > 0):
                st["state"] = "paid"
        elif name == "PeriodSettled":
            st = statements.get((a["agreementId"], a["period"]))
            if st:
                st["state"] = "settled"
    return SettlementView(list(offers.values()), list(certs.values()), list(agreements.values()),
                          sorted(statements.values(), key=lambda s: (s["agreement_id"], s["period"])), disputes)


def filter_settlement(view: SettlementView, member: str | None, period: int | None) -> SettlementView:
    """Rows that involve ``member`` (as owner, holder, payer, provider or disputing party) and fall in ``period``."""
    def involves(*who) -> bool:
        return member is None or member in who

    statements = [s for s in view.statements if (period is None or s["period"] == period)
                  and involves(s["payer"], *(x["provider"] for x in s["amounts"]))]
    disputes = [d for d in view.disputes if (period is None or d["period"] == period)
                and involves(d["party"], d["payer"], *d["providers"])]
    return SettlementView([o for o in view.offers if involves(o["owner"])],
                          [c for c in view.certificates if involves(c["holder"], c["owner"])],
                          [a for a in view.agreements if involves(a["payer"], *a["providers"])], statements, disputes)


def certificate_state(cert: dict, now: int) -> str:
    return "revoked" if cert["revoked"] else "expired" if cert["expires_at"] <= now else "valid"


# ---------------------------------------------------------------------- pools


@dataclass
class PoolsView:
    pools: list[dict] = field(default_factory=list)
    losses: list[dict] = field(default_factory=list)
    contributions: list[dict] = field(default_factory=list)
    aid: list[dict] = field(default_factory=list)


def fold_pools(events: list[dict], schemes: dict[str, str] | None = None) -> PoolsView:
    """``schemes`` names the payout contracts by address (RiskPool, MutualAid) for the "paid by" column."""
    schemes = schemes or {}
    pools: dict[str, dict] = {}
    losses: dict[str, dict] = {}
    contributions: dict[tuple[str, str], dict] = {}
    aid: dict[str, dict] = {}
    reserved: dict[str, str] = {}
    for e in events:
        a, name = e["args"], e["event"]
        if name == "PoolOpened":
            pools[a["poolId"]] = {"pool_id": a["poolId"], "opener": a["opener"], "members": a["members"], "weights": a["weights"],
                                  "cap_per_period": a["capPerPeriod"], "period_days": a["periodSeconds"] / 86_400,
                                  "active": False, "ratio_version": 1, **_where(e)}
        elif name == "PoolActivated" and a["poolId"] in pools:
            pools[a["poolId"]]["active"] = True
        elif name == "RatioChanged" and a["poolId"] in pools:
            pools[a["poolId"]].update(weights=a["weights"], ratio_version=a["version"])
        elif name == "LossShared":
            loss = a["loss"]
            losses[a["lossId"]] = {"loss_id": a["lossId"], "pool_id": a["poolId"], "insurer": a["insurer"],
                                   "kind": LOSS_KINDS.get(loss["kind"], str(loss["kind"])), "reported": loss["reported"],
                                   "shared": loss["shared"], "period": loss["period"], "ratio_version": loss["ratioVersion"],
                                   "evidence_root": a["evidenceRoot"], "shares": [], **_where(e)}
        elif name == "ShareAssigned" and a["lossId"] in losses:
            loss = losses[a["lossId"]]
            state = "borne" if a["member"] == loss["insurer"] else "none" if a["amount"] == 0 else "owed"
            loss["shares"].append({"member": a["member"], "amount": a["amount"], "payment": state})
        elif name in ("ContributionRecorded", "ContributionConfirmed"):
            key = (a["lossId"], a["payer"])
            state = "recorded" if name == "ContributionRecorded" else "confirmed"
            if name == "ContributionRecorded":
                contributions[key] = {"loss_id": a["lossId"], "payer": a["payer"], "payee": a["payee"], "amount": a["amount"],
                                      "payment_ref": a["paymentRef"], "state": state, **_where(e)}
            elif key in contributions:
                contributions[key]["state"] = state
            for share in losses.get(a["lossId"], {"shares": []})["shares"]:
                if share["member"] == a["payer"]:
                    share["payment"] = state
        elif name == "ApportionmentAnchored":
            t = a["terms"]
            aid[a["claimKey"]] = {"claim_key": a["claimKey"], "organiser": a["organiser"], "claim_id_hash": t["claimIdHash"],
                                  "payout": t["payout"], "participants": t["participants"],
                                  "rule": AID_RULES.get(t["rule"], str(t["rule"])), "share_root": a["shareRoot"],
                                  "share_list_hash": t["shareListHash"], "payee": t["payee"], "state": "anchored",
                                  "payment_ref": None, **_where(e)}
        elif name == "PayoutRecorded" and a["claimKey"] in aid:
            aid[a["claimKey"]].update(state="paid", payment_ref=a["paymentRef"])
        elif name == "PayoutConfirmed" and a["claimKey"] in aid:
            aid[a["claimKey"]]["state"] = "confirmed"
        elif name == "ClaimPayoutReserved":
            reserved[a["claimKey"]] = schemes.get(a["scheme"], a["scheme"])
    for key, row in aid.items():
        row["paid_by"] = reserved.get(key)
    for key, row in losses.items():
        row["paid_by"] = reserved.get(key)
    return PoolsView(list(pools.values()), list(losses.values()), list(contributions.values()), list(aid.values()))


def filter_pools(view: PoolsView, member: str | None, period: int | None) -> PoolsView:
    """Rows that involve ``member`` (pool member, insurer, share holder, payer, payee, organiser); losses of ``period``."""
    def involves(*who) -> bool:
        return member is None or member in who

    return PoolsView([p for p in view.pools if involves(*p["members"])],
                     [x for x in view.losses if (period is None or x["period"] == period)
                      and involves(x["insurer"], *(s["member"] for s in x["shares"]))],
                     [c for c in view.contributions if involves(c["payer"], c["payee"])],
                     [m for m in view.aid if involves(m["organiser"], m["payee"])])


# ---------------------------------------------------------------------- a member's own money


def member_statements(view: SettlementView, member: str) -> dict:
    """Each statement naming ``member``: its line as a provider (earned) or the total as the payer (owes), by state."""
    rows, totals = [], {"earned": {}, "owed": {}}
    for st in view.statements:
        for line in st["amounts"]:
            if line["provider"] == member:
                rows.append({"agreement_id": st["agreement_id"], "period": st["period"], "role": "provider",
                             "counterparty": st["payer"], "amount": line["amount"], "state": st["state"],
                             "payment": line["payment"]})
                totals["earned"][st["state"]] = totals["earned"].get(st["state"], 0) + line["amount"]
        if st["payer"] == member:
            unpaid = sum(x["amount"] for x in st["amounts"] if x["payment"] != "received")
            rows.append({"agreement_id": st["agreement_id"], "period": st["period"], "role": "payer", "counterparty": None,
                         "amount": st["total"], "state": st["state"], "payment": f"{st['total'] - unpaid:,} received"})
            totals["owed"][st["state"]] = totals["owed"].get(st["state"], 0) + st["total"]
    return {"statements": rows, "totals": totals}



def member_pool_money(view: PoolsView, member: str) -> dict:
    """What ``member`` owes and is owed in risk-pool losses, and the mutual-aid payouts it organised or received."""
    owes, owed_to = [], []
    for loss in view.losses:
        for share in loss["shares"]:
            if share["member"] == member and share["payment"] not in ("borne", "none"):
                owes.append({"loss_id": loss["loss_id"], "period": loss["period"], "to": loss["insurer"], "amount": share["amount"],
                             "payment": share["payment"], "time": loss["time"]})
            elif loss["insurer"] == member and share["payment"] not in ("borne", "none"):
                owed_to.append({"loss_id": loss["loss_id"], "period": loss["period"], "from": share["member"],
                                "amount": share["amount"], "payment": share["payment"], "time": loss["time"]})
    aid = [m for m in view.aid if member in (m["organiser"], m["payee"])]
    return {"owes": owes, "owed_to": owed_to, "aid": aid,
            "totals": {"owes_open": sum(x["amount"] for x in owes if x["payment"] == "owed"),
                       "owes_paid": sum(x["amount"] for x in owes if x["payment"] != "owed"),
                       "due_open": sum(x["amount"] for x in owed_to if x["payment"] != "confirmed"),
                       "received": sum(x["amount"] for x in owed_to if x["payment"] == "confirmed"),
                       "aid_received": sum(m["payout"] for m in aid if m["payee"] == member and m["state"] == "confirmed")}}


# ---------------------------------------------------------------------- CSV


def _cell(value) -> str:
    if isinstance(value, list):
        return ";".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ":".join(_cell(v) for v in value.values())
    return "" if value is None else str(value)


def table_csv(page: str, table: str, rows: list[dict]) -> str:
    """One table of a page as CSV; statement lines become ``provider:amount:payment`` joined by ``;``."""
    columns = CSV_TABLES.get(page, {}).get(table)
    if columns is None:
        raise MoneyFilterError(f"no table {table!r} on the {page} page", reason="unknown_table",
                               hint="tables: " + ", ".join(CSV_TABLES.get(page, {})))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        flat = {**row, "lines": row.get("amounts"), "shares": row.get("shares")}
        if "expires_at" in row:
            flat["expires"] = iso(row["expires_at"])
        writer.writerow([_cell(flat.get(c)) for c in columns])
    return out.getvalue()
