"""Metering from what the chain already records, and the statement round trip through SettlementBook."""
from __future__ import annotations

import pytest

from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.settlement.book import SettlementBook, SettlementError
from node.settlement.formula import Figure, Formula, Source
from node.settlement.metering import MeteringError

DAY = 86_400
CLAIMS = dataset_id("claims")


def test_usage_per_certificate_counts_accesses_rows_and_contributions_in_the_period_only(consortium):
    c = consortium
    a, p, b = (c.accounts[n].address for n in ("insurer_a", "platform", "insurer_b"))
    stats_offer = c["platform"].publish_offer(CLAIMS, Purpose.STATISTICS, term=30 * DAY, period_fee=100, per_access_price=3,
                                              per_row_price=1, per_contribution_price=40)
    pricing_offer = c["insurer_b"].publish_offer(CLAIMS, Purpose.PRICING, term=30 * DAY, period_fee=10)
    stats_cert = c["insurer_a"].buy_offer(stats_offer)
    pricing_cert = c["insurer_a"].buy_offer(pricing_offer)
    other = c["insurer_b"].buy_offer(stats_offer)  # another holder: never metered for insurer_a
    start = c.now() + 300  # room for the set-up transactions below, however slow the machine
    formula = Formula(0, 1000, 5000, 5000, 0, Source.CONTRIBUTIONS, Source.ROWS, Source.DECLARED)
    aid = c["insurer_a"].propose_agreement(a, [p, b], formula, period_start=start, period_seconds=DAY, dispute_window=DAY)
    c["platform"].accept_agreement(aid)
    c["insurer_b"].accept_agreement(aid)
    c["platform"].record_access(stats_cert["grant_id"], b"\x01" * 32, 99)  # before the period: not metered
    c.advance(310)
    c["platform"].record_access_batch([stats_cert["grant_id"]] * 3 + [other["grant_id"]], [b"\x02" * 32] * 4, [5, 6, 7, 1000]).wait()
    c["insurer_b"].record_access(pricing_cert["grant_id"], b"\x03" * 32, 4)
    job = c["insurer_a"].open_job(b"\x0a" * 32, [p, b], b"\x0b" * 32, 10, c.now() + DAY)
    c["platform"].commit_contribution(job, b"\x0c" * 32)
    c["insurer_b"].commit_contribution(job, b"\x0d" * 32)  # insurer_a holds no STATISTICS certificate from insurer_b
    c["insurer_a"].declare_figure(aid, 0, p, Figure.PREMIUM, 70_000)
    c["insurer_a"].declare_figure(aid, 0, b, Figure.PREMIUM, 30_000)
    book = SettlementBook(c["insurer_a"], from_block=c.deployment.deployment_block)
    with pytest.raises(MeteringError):
        book.compute(aid, 0)  # the period has not ended
    c.advance(DAY)
    c["platform"].record_access(stats_cert["grant_id"], b"\x04" * 32, 50)  # after the period: not metered
    computed = book.compute(aid, 0)
    usage = {u.certificate_id: (u.accesses, u.rows, u.contributions) for u in computed.inputs.certificates}
    assert usage == {stats_cert["certificate_id"]: (3, 18, 1), pricing_cert["certificate_id"]: (1, 4, 0)}
    charges = [line.certificate_charges for line in computed.lines]
    assert charges == [100 + 3 * 3 + 18 + 40, 10]
    # pool 10 000: contributions 1:0 (half the weight), rows 18:4 (the other half)
    assert [line.data_value_share for line in computed.lines] == [5000 + 4091, 909]
    assert sum(computed.amounts) == sum(charges) + 10_000
    # issue, reproduce from another member's book, confirm
    c["insurer_a"].issue_statement(aid, 0, computed.inputs_hash, computed.amounts)
    theirs = SettlementBook(c["platform"], from_block=c.deployment.deployment_block)
    assert theirs.check(aid, 0)["matches"]
    theirs.confirm(aid, 0)


def test_a_statement_that_differs_from_the_recomputation_is_not_confirmed(consortium):
    c = consortium
    a, p = c.accounts["insurer_a"].address, c.accounts["platform"].address
    offer = c["platform"].publish_offer(CLAIMS, Purpose.PRICING, term=30 * DAY, per_access_price=5)
    cert = c["insurer_a"].buy_offer(offer)
    aid = c["insurer_a"].propose_agreement(a, [p], Formula(0, 0, 10000, 0, 0), period_start=c.now(), period_seconds=DAY,
                                           dispute_window=DAY)
    c["platform"].accept_agreement(aid)
    c["platform"].record_access(cert["grant_id"], b"\x01" * 32, 1)
    c.advance(DAY)
    book = SettlementBook(c["platform"], from_block=c.deployment.deployment_block)
    computed = book.compute(aid, 0)
    assert computed.amounts == [5]
    c["insurer_a"].issue_statement(aid, 0, computed.inputs_hash, [4])  # the payer shaves a unit
    with pytest.raises(SettlementError) as e:
        book.confirm(aid, 0)
    assert e.value.reason == "statement_mismatch"
    assert c["platform"].get_statement(aid, 0)["confirmations"] == 0
