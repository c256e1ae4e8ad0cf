"""A history of every money event on a real chain: offers, certificates, statements (disputed, confirmed, paid,
settled), pool losses and contributions, a mutual-aid payout. Shared by the page tests of the regulator and members."""
from __future__ import annotations

import hashlib

from node.chain.deployment import ClaimStep, Purpose
from node.chain.ledger import dataset_id
from node.settlement.formula import Formula, Source
from privacy.apportion import ShareTree, apportion_equal, participant_ref

DAY = 86_400
FORMULA = Formula(500, 2000, 5000, 3000, 2000, Source.ACCESSES, Source.DECLARED, Source.DECLARED)
POOL = hashlib.sha256(b"pool: page test").digest()


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def approved_claim(c, member: str, claim_id: str) -> tuple[bytes, bytes]:
    cid, root = _h(claim_id), _h("evidence of " + claim_id)
    c[member].anchor_batch(root, 3, _h("batch of " + claim_id))
    for step in (ClaimStep.REPORTED, ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED, ClaimStep.APPROVED):
        c[member].record_claim_step(cid, step)
    return cid, root


def build_money_history(c) -> dict:
    """Drive the consortium ``c`` (tests/conftest.py) through every settlement and pool event; returns the ids used."""
    a, b, p = (c.accounts[n].address for n in ("insurer_a", "insurer_b", "platform"))
    out: dict = {}
    # Offers: platform sells claims data to insurers; one offer withdrawn; one certificate revoked.
    o1 = c["platform"].publish_offer(dataset_id("claims-2026"), Purpose.PRICING, term=30 * DAY, period_fee=1000,
                                     per_access_price=7, per_row_price=1, revenue_share_bps=2000)
    o2 = c["insurer_b"].publish_offer(dataset_id("policies"), Purpose.FRAUD, term=10 * DAY, period_fee=500)
    cert1 = c["insurer_a"].buy_offer(o1)
    cert2 = c["insurer_b"].buy_offer(o1)
    cert3 = c["insurer_a"].buy_offer(o2)
    c["platform"].revoke_certificate(cert2["certificate_id"], _h("consent withdrawn"))
    c["insurer_b"].withdraw_offer(o2)
    out["offers"] = [o1, o2]
    out["certificates"] = [cert1["certificate_id"], cert2["certificate_id"], cert3["certificate_id"]]
    # Agreement: insurer_a pays platform and insurer_b; periods of one day.
    start = c.now()
    aid = c["insurer_a"].propose_agreement(a, [p, b], FORMULA, period_start=start, period_seconds=DAY, dispute_window=DAY)
    c["platform"].accept_agreement(aid)
    c["insurer_b"].accept_agreement(aid)
    c.advance(3 * DAY + 10)
    # Period 0: issued, disputed by insurer_b, issued again, confirmed by all, paid, received: settled.
    c["insurer_a"].issue_statement(aid, 0, _h("inputs 0 r1"), [1200, 800])
    c["insurer_b"].dispute_statement(aid, 0, _h("rows miscounted"))
    c["insurer_a"].issue_statement(aid, 0, _h("inputs 0 r2"), [1200, 900])
    for n in ("insurer_a", "platform", "insurer_b"):
        c[n].confirm_statement(aid, 0)
    c["insurer_a"].record_payment(aid, 0, p, _h("BANK-0-P"))
    c["insurer_a"].record_payment(aid, 0, b, _h("BANK-0-B"))
    c["platform"].confirm_payment(aid, 0)
    c["insurer_b"].confirm_payment(aid, 0)
    # Period 1: confirmed by all, one payment recorded (paid, not yet received).
    c["platform"].issue_statement(aid, 1, _h("inputs 1"), [3000, 0])
    for n in ("insurer_a", "platform", "insurer_b"):
        c[n].confirm_statement(aid, 1)
    c["insurer_a"].record_payment(aid, 1, p, _h("BANK-1-P"))
    # Period 2: issued, confirmed by the payer only. Period 3 does not exist.
    c["insurer_a"].issue_statement(aid, 2, _h("inputs 2"), [50, 70])
    c["insurer_a"].confirm_statement(aid, 2)
    out["agreement"] = aid
    # Risk pool 70:30 between the insurers: one loss, insurer_b's contribution recorded and confirmed.
    c["insurer_a"].open_pool(POOL, [a, b], [70, 30], 10**9, 30 * DAY)
    c["insurer_b"].join_pool(POOL)
    cid, root = approved_claim(c, "insurer_a", "CLM-PAGE-1")
    loss = c["insurer_a"].report_loss(POOL, cid, 10_001, root)
    c["insurer_b"].record_contribution(loss["loss_id"], _h("BANK-POOL-1"))
    c["insurer_a"].confirm_contribution(loss["loss_id"], b)
    cid2, root2 = approved_claim(c, "insurer_b", "CLM-PAGE-2")
    loss2 = c["insurer_b"].report_loss(POOL, cid2, 500, root2)  # insurer_a owes its share, unpaid
    out["losses"] = [loss, loss2]
    # Mutual aid on another claim of the platform: anchored, paid, confirmed by the payee.
    cid3, root3 = approved_claim(c, "platform", "CLM-PAGE-AID")
    refs = [participant_ref(b"page-test-salt-0123", f"p{i}") for i in range(7)]
    tree = ShareTree(refs, apportion_equal(7_000, 7))
    key = c["platform"].anchor_apportionment(cid3, root3, tree.total, tree.size, 1, tree.root_hash, _h("list"), b)
    c["platform"].record_payout(key, _h("BANK-AID-1"))
    c["insurer_b"].confirm_payout(key)
    out["apportionment"] = {"claim_key": key, "root": tree.root_hash, "payout": 7_000, "participants": 7}
    return out
