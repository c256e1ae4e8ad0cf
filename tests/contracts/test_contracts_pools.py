"""RiskPool and MutualAid: only confirmed claims count, once; the agreed ratio, exact shares, caps, payments, suspension."""
from __future__ import annotations

import hashlib
import random

import pytest

from node.chain.deployment import ClaimStep
from node.chain.errors import ContractRevert
from privacy.apportion import ShareTree, apportion_equal, apportion_pro_rata, participant_ref, verify_share

POOL = hashlib.sha256(b"pool: fraud losses 2026").digest()
DAY = 86_400
OWED, RECORDED, CONFIRMED = 1, 2, 3
APPROVED_CLAIM, FRAUD_FINDING = 1, 2


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def claim(c, insurer: str, claim_id: str, last: ClaimStep = ClaimStep.APPROVED, anchor: bool = True) -> tuple[bytes, bytes]:
    """Take ``insurer``'s claim through its lifecycle up to ``last``, its evidence root anchored; (claim id hash, root)."""
    cid, root = _h(claim_id), _h("evidence of " + claim_id)
    if anchor:
        c[insurer].anchor_batch(root, 3, _h("batch of " + claim_id))
    path = [ClaimStep.REPORTED, ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED]
    path += {ClaimStep.APPROVED: [ClaimStep.APPROVED], ClaimStep.PAID: [ClaimStep.APPROVED, ClaimStep.PAID],
             ClaimStep.REJECTED: [ClaimStep.REJECTED]}.get(last, [])
    for step in path[: path.index(last) + 1]:
        c[insurer].record_claim_step(cid, step)
    return cid, root


def open_pool(c, members=("insurer_a", "insurer_b"), weights=(70, 30), cap=10**12, period=30 * DAY, pool=POOL):
    c[members[0]].open_pool(pool, [c.accounts[m].address for m in members], weights, cap, period)
    for m in members[1:]:
        c[m].join_pool(pool)


def expect(name: str, call, *args):
    with pytest.raises(ContractRevert) as e:
        call(*args)
    assert e.value.name == name, e.value
    return e.value


# --------------------------------------------------------------------------------------- risk pool


def test_pool_takes_losses_only_once_every_listed_member_joined(consortium):
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    c["insurer_a"].open_pool(POOL, [a, b], [70, 30], 10**9, 30 * DAY)
    cid, root = claim(c, "insurer_a", "CLM-1")
    assert not c["auditor"].get_pool(POOL)["active"]
    expect("PoolNotActive", c["insurer_a"].report_loss, POOL, cid, 1000, root)
    expect("NotPoolMember", c["platform"].join_pool, POOL)
    c["insurer_b"].join_pool(POOL)
    expect("AlreadyJoined", c["insurer_b"].join_pool, POOL)
    pool = c["auditor"].get_pool(POOL)
    assert pool["active"] and pool["members"] == [a, b] and pool["weights"] == [70, 30]
    expect("PoolExists", c["insurer_b"].open_pool, POOL, [a, b], [1, 1], 1, 1)


@pytest.mark.parametrize("members,weights,cap,period", [
    (["insurer_a"], [1], 10, 10), (["insurer_a", "insurer_b"], [1], 10, 10), (["insurer_a", "insurer_b"], [1, 0], 10, 10),
    (["insurer_a", "insurer_b"], [1, 1], 0, 10), (["insurer_a", "insurer_b"], [1, 1], 10, 0),
    (["insurer_a", "insurer_a"], [1, 1], 10, 10),
])
def test_bad_pool_terms_are_refused(consortium, members, weights, cap, period):
    c = consortium
    expect("BadPoolTerms", c["insurer_a"].open_pool, POOL, [c.accounts[m].address for m in members], weights, cap, period)


def test_pool_of_suspended_or_non_members_or_without_the_opener_is_refused(consortium):
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    expect("NotMember", c["insurer_a"].open_pool, POOL, [a, c.accounts["outsider"].address], [1, 1], 10, 10)
    expect("NotPoolMember", c["insurer_a"].open_pool, POOL, [b, c.accounts["platform"].address], [1, 1], 10, 10)
    c["regulator"].suspend(b)
    expect("MemberNotInGoodStanding", c["insurer_a"].open_pool, POOL, [a, b], [1, 1], 10, 10)


def test_loss_is_shared_by_the_agreed_ratio_and_the_ratio_moves_from_70_30_to_40_60_by_unanimity(consortium):
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    open_pool(c)
    cid, root = claim(c, "insurer_a", "CLM-70-30")
    loss = c["insurer_a"].report_loss(POOL, cid, 1_000_001, root)
    assert loss["shares"] == {a: 700_001, b: 300_000} and loss["shared"] == 1_000_001
    assert c["auditor"].get_loss(loss["loss_id"])["kind"] == APPROVED_CLAIM

    proposal = c["insurer_b"].propose_ratio(POOL, [40, 60])
    assert c["auditor"].get_pool(POOL)["weights"] == [70, 30]  # one approval of two: nothing changes yet
    expect("AlreadyApproved", c["insurer_b"].approve_ratio, POOL, proposal)
    expect("NotPoolMember", c["platform"].approve_ratio, POOL, proposal)
    expect("UnknownRatioProposal", c["insurer_a"].approve_ratio, POOL, proposal + 1)
    assert c["insurer_a"].approve_ratio(POOL, proposal) is True
    pool = c["auditor"].get_pool(POOL)
    assert pool["weights"] == [40, 60] and pool["ratio_version"] == 2

    cid2, root2 = claim(c, "insurer_b", "CLM-40-60")
    loss2 = c["insurer_b"].report_loss(POOL, cid2, 1_000_001, root2)
    assert loss2["shares"] == {a: 400_000, b: 600_001}
    assert c["auditor"].get_loss(loss2["loss_id"])["ratio_version"] == 2
    assert c["auditor"].get_loss(loss["loss_id"])["ratio_version"] == 1  # the earlier loss keeps its split


def test_an_older_ratio_proposal_cannot_take_effect_after_a_newer_one(consortium):
    c = consortium
    open_pool(c)
    old = c["insurer_a"].propose_ratio(POOL, [50, 50])
    new = c["insurer_b"].propose_ratio(POOL, [40, 60])
    expect("UnknownRatioProposal", c["insurer_b"].approve_ratio, POOL, old)
    assert c["insurer_a"].approve_ratio(POOL, new)
    assert c["auditor"].get_pool(POOL)["weights"] == [40, 60]


def test_on_chain_apportionment_equals_the_python_rule_and_sums_exactly(consortium):
    rnd = random.Random(5)
    pool = consortium["auditor"].risk_pool
    for _ in range(40):
        weights = [rnd.randint(1, 2**32 - 1) if rnd.random() < 0.3 else rnd.randint(1, 9) for _ in range(rnd.randint(1, 16))]
        amount = rnd.choice([0, 1, rnd.randint(0, 10**6), rnd.randint(0, 2**128 - 1)])
        shares = consortium.gateway.call(pool.functions.apportion(amount, weights))
        assert shares == apportion_pro_rata(amount, weights) and sum(shares) == amount


def test_only_confirmed_claims_count(consortium):
    c = consortium
    open_pool(c)
    assessed, root = claim(c, "insurer_a", "CLM-ASSESSED", ClaimStep.ASSESSED)
    expect("ClaimNotConfirmed", c["insurer_a"].report_loss, POOL, assessed, 500, root)
    rejected, root_r = claim(c, "insurer_a", "CLM-REJECTED", ClaimStep.REJECTED)
    expect("ClaimNotConfirmed", c["insurer_a"].report_loss, POOL, rejected, 500, root_r)  # a rejection alone is no loss
    unanchored, _ = claim(c, "insurer_a", "CLM-NO-EVIDENCE", anchor=False)
    expect("EvidenceNotAnchored", c["insurer_a"].report_loss, POOL, unanchored, 500, _h("evidence of CLM-NO-EVIDENCE"))
    # insurer_b cannot report insurer_a's claim (the same claim id under insurer_b is another, unconfirmed claim),
    # nor with insurer_a's evidence root
    approved, root_a = claim(c, "insurer_a", "CLM-A")
    expect("EvidenceNotAnchored", c["insurer_b"].report_loss, POOL, approved, 500, root_a)
    c["insurer_b"].anchor_batch(_h("b's batch"), 1, _h("b's batch id"))
    expect("ClaimNotConfirmed", c["insurer_b"].report_loss, POOL, approved, 500, _h("b's batch"))
    expect("EmptyLoss", c["insurer_a"].report_loss, POOL, approved, 0, root_a)
    expect("NotPoolMember", c["platform"].report_loss, POOL, approved, 500, root_a)

    # the two kinds that count: approved (or paid), and rejected with a fraud finding
    fraud = c["insurer_a"].report_loss(POOL, rejected, 500, root_r, _h("fraud investigation report"))
    assert c["auditor"].get_loss(fraud["loss_id"])["kind"] == FRAUD_FINDING
    paid, root_p = claim(c, "insurer_a", "CLM-PAID", ClaimStep.PAID)
    assert c["auditor"].get_loss(c["insurer_a"].report_loss(POOL, paid, 500, root_p)["loss_id"])["kind"] == APPROVED_CLAIM


def test_a_loss_is_counted_once_in_any_pool(consortium):
    c = consortium
    open_pool(c)
    other = _h("another pool")
    open_pool(c, ("insurer_a", "platform"), (1, 1), pool=other)
    cid, root = claim(c, "insurer_a", "CLM-ONCE")
    loss = c["insurer_a"].report_loss(POOL, cid, 900, root)
    expect("LossAlreadyCounted", c["insurer_a"].report_loss, POOL, cid, 900, root)
    expect("LossAlreadyCounted", c["insurer_a"].report_loss, other, cid, 900, root)
    assert c["auditor"].get_loss(loss["loss_id"])["pool_id"] == POOL


def test_the_cap_per_period_limits_what_is_shared_and_resets_next_period(consortium):
    c = consortium
    open_pool(c, cap=1_000, period=30 * DAY)
    losses = [claim(c, "insurer_a", f"CLM-CAP-{i}") for i in range(4)]
    first = c["insurer_a"].report_loss(POOL, *losses[0][:1], 700, losses[0][1])
    second = c["insurer_a"].report_loss(POOL, losses[1][0], 500, losses[1][1])
    assert (first["shared"], second["shared"]) == (700, 300)  # the rest of the second loss stays with its insurer
    assert sum(second["shares"].values()) == 300 and c["auditor"].get_loss(second["loss_id"])["reported"] == 500
    err = expect("PeriodCapReached", c["insurer_a"].report_loss, POOL, losses[2][0], 1, losses[2][1])
    assert err.args_by_name["period"] == 0
    assert c["auditor"].pool_period(POOL, c.now())["shared"] == 1_000
    c.advance(30 * DAY)
    third = c["insurer_a"].report_loss(POOL, losses[2][0], 1_500, losses[2][1])
    assert third["period"] == 1 and third["shared"] == 1_000
    expect("PeriodCapReached", c["insurer_a"].report_loss, POOL, losses[3][0], 1, losses[3][1])


def test_contributions_are_recorded_by_the_payer_and_confirmed_by_the_payee(consortium):
    c = consortium
    a, b, p = (c.accounts[n].address for n in ("insurer_a", "insurer_b", "platform"))
    open_pool(c, ("insurer_a", "insurer_b", "platform"), (5, 3, 2))
    cid, root = claim(c, "insurer_a", "CLM-PAY")
    loss = c["insurer_a"].report_loss(POOL, cid, 10_000, root)
    lid = loss["loss_id"]
    assert c["auditor"].loss_share(lid, a) == (5_000, CONFIRMED)  # the insurer bears its own share
    assert c["auditor"].loss_share(lid, b) == (3_000, OWED)
    expect("NothingOwed", c["insurer_a"].record_contribution, lid, _h("ref"))
    expect("NothingOwed", c["regulator"].record_contribution, lid, _h("ref"))
    expect("EmptyPaymentRef", c["insurer_b"].record_contribution, lid, b"\x00" * 32)
    expect("PaymentNotRecorded", c["insurer_a"].confirm_contribution, lid, b)
    receipt = c["insurer_b"].record_contribution(lid, _h("bank transfer 0001"))
    event = c["auditor"].risk_pool.events.ContributionRecorded().process_receipt(receipt)[0]["args"]
    assert (event["payer"], event["payee"], event["amount"], bytes(event["paymentRef"])) == (b, a, 3_000, _h("bank transfer 0001"))
    assert c["auditor"].loss_share(lid, b) == (3_000, RECORDED)
    expect("NothingOwed", c["insurer_b"].record_contribution, lid, _h("again"))
    expect("NotLossInsurer", c["platform"].confirm_contribution, lid, b)
    c["insurer_a"].confirm_contribution(lid, b)
    assert c["auditor"].loss_share(lid, b) == (3_000, CONFIRMED)
    expect("PaymentNotRecorded", c["insurer_a"].confirm_contribution, lid, b)
    expect("UnknownLoss", c["insurer_b"].record_contribution, _h("no such loss"), _h("ref"))
    assert c["auditor"].loss_share(lid, p) == (2_000, OWED)


def test_a_suspended_member_can_neither_contribute_nor_be_paid(consortium):
    c = consortium
    a, b = c.accounts["insurer_a"].address, c.accounts["insurer_b"].address
    open_pool(c, ("insurer_a", "insurer_b", "platform"), (1, 1, 1))
    cid, root = claim(c, "insurer_a", "CLM-SUSP")
    lid = c["insurer_a"].report_loss(POOL, cid, 3_000, root)["loss_id"]
    c["regulator"].suspend(b)                                          # the payer is suspended: cannot contribute
    expect("MemberNotInGoodStanding", c["insurer_b"].record_contribution, lid, _h("ref b"))
    c["regulator"].reinstate(b)
    c["insurer_b"].record_contribution(lid, _h("ref b"))
    c["regulator"].suspend(a)                                          # the payee is suspended: cannot be paid
    expect("PayeeNotInGoodStanding", c["platform"].record_contribution, lid, _h("ref p"))
    expect("MemberNotInGoodStanding", c["insurer_a"].confirm_contribution, lid, b)
    cid2, root2 = claim(c, "insurer_b", "CLM-SUSP-2")
    expect("MemberNotInGoodStanding", c["insurer_a"].report_loss, POOL, cid2, 1, root2)  # nor report a loss
    c["regulator"].reinstate(a)
    c["insurer_a"].confirm_contribution(lid, b)
    c["platform"].record_contribution(lid, _h("ref p"))
    assert c["auditor"].loss_share(lid, b)[1] == CONFIRMED and c["auditor"].loss_share(lid, c.accounts["platform"].address)[1] == RECORDED


# --------------------------------------------------------------------------------------- mutual aid


def _apportionment(n: int, payout: int, seed: int = 1):
    salt = b"mutual-aid-salt-" + bytes([seed])
    refs = [participant_ref(salt, f"participant-{i}") for i in range(n)]
    shares = apportion_equal(payout, n)
    return refs, shares, ShareTree(refs, shares)


def test_mutual_aid_apportionment_is_anchored_once_and_every_participant_verifies_against_the_chain(consortium):
    c = consortium
    org = c["platform"]
    cid, root = claim(c, "platform", "MA-CLM-1")
    refs, shares, tree = _apportionment(257, 1_000_000_007)
    payee = c.accounts["candidate"]  # the claimant's own account: no member, confirms with its own key
    key = org.anchor_apportionment(cid, root, tree.total, tree.size, 1, tree.root_hash, _h("share list"), payee.address)
    on_chain = c["auditor"].get_apportionment(key)
    assert on_chain["payout"] == 1_000_000_007 and on_chain["participants"] == 257 and on_chain["state"] == 1
    for i in range(tree.size):  # everything a participant trusts comes from the chain
        verify_share(refs[i], shares[i], i, on_chain["participants"], tree.proof(i), on_chain["share_root"], on_chain["payout"])
    expect("AlreadyApportioned", org.anchor_apportionment, cid, root, tree.total, tree.size, 1, tree.root_hash, bytes(32),
           payee.address)

    expect("NotOrganiser", c["insurer_a"].record_payout, key, _h("pay"))
    expect("WrongPayoutState", c.ledgers["candidate"].confirm_payout, key)
    org.record_payout(key, _h("payout transfer 77"))
    expect("WrongPayoutState", org.record_payout, key, _h("again"))
    expect("NotPayee", org.confirm_payout, key)
    receipt = c.ledgers["candidate"].confirm_payout(key)
    assert c["auditor"].mutual_aid.events.PayoutConfirmed().process_receipt(receipt)[0]["args"]["payout"] == 1_000_000_007
    assert c["auditor"].get_apportionment(key)["state"] == 3


def test_mutual_aid_needs_the_organisers_own_approved_claim_with_evidence(consortium):
    c = consortium
    _, _, tree = _apportionment(10, 1_000)
    payee = c.accounts["candidate"].address
    args = (tree.total, tree.size, 1, tree.root_hash, bytes(32), payee)
    assessed, root = claim(c, "platform", "MA-ASSESSED", ClaimStep.ASSESSED)
    expect("ClaimNotApproved", c["platform"].anchor_apportionment, assessed, root, *args)
    rejected, root_r = claim(c, "platform", "MA-REJECTED", ClaimStep.REJECTED)
    expect("ClaimNotApproved", c["platform"].anchor_apportionment, rejected, root_r, *args)
    approved, root_a = claim(c, "insurer_a", "MA-OTHERS")
    expect("EvidenceNotAnchored", c["platform"].anchor_apportionment, approved, root_a, *args)
    expect("BadApportionment", c["insurer_a"].anchor_apportionment, approved, root_a, 0, tree.size, 1, tree.root_hash, bytes(32), payee)
    expect("BadApportionment", c["insurer_a"].anchor_apportionment, approved, root_a, tree.total, tree.size, 0, tree.root_hash,
           bytes(32), payee)
    expect("NotMember", c["outsider"].anchor_apportionment, approved, root_a, *args)
    c["regulator"].suspend(c.accounts["insurer_b"].address)
    expect("PayeeNotInGoodStanding", c["insurer_a"].anchor_apportionment, approved, root_a, *args[:-1],
           c.accounts["insurer_b"].address)


def test_a_suspended_member_payee_cannot_be_paid_mutual_aid(consortium):
    c = consortium
    cid, root = claim(c, "platform", "MA-SUSP")
    _, _, tree = _apportionment(5, 50)
    b = c.accounts["insurer_b"].address
    key = c["platform"].anchor_apportionment(cid, root, tree.total, tree.size, 1, tree.root_hash, bytes(32), b)
    c["regulator"].suspend(b)
    expect("PayeeNotInGoodStanding", c["platform"].record_payout, key, _h("pay"))
    c["regulator"].reinstate(b)
    c["platform"].record_payout(key, _h("pay"))
    c["regulator"].suspend(b)
    expect("PayeeNotInGoodStanding", c["insurer_b"].confirm_payout, key)


def test_the_regulators_index_takes_every_pool_and_mutual_aid_event(consortium, tmp_path):
    """Every money event is on chain and the regulator's index holds it, under the category `pools`."""
    from node.audit.indexer import AuditIndexer
    from node.audit.queries import AuditQueries
    from node.audit.verify import verify_index
    from node.store.db import create_store_engine

    c = consortium
    open_pool(c)
    cid, root = claim(c, "insurer_a", "CLM-IDX")
    lid = c["insurer_a"].report_loss(POOL, cid, 1_000, root)["loss_id"]
    c["insurer_b"].record_contribution(lid, _h("ref"))
    c["insurer_a"].confirm_contribution(lid, c.accounts["insurer_b"].address)
    _, _, tree = _apportionment(4, 40)
    aid_cid, aid_root = claim(c, "insurer_a", "CLM-IDX-AID")  # another claim: one claim is paid by one scheme only
    key = c["insurer_a"].anchor_apportionment(aid_cid, aid_root, tree.total, tree.size, 1, tree.root_hash, bytes(32),
                                              c.accounts["insurer_b"].address)
    c["insurer_a"].record_payout(key, _h("payout"))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditIndexer(engine, c.gateway, c.deployment).sync()
    assert verify_index(engine, c.gateway, c.deployment.deployment_block).matches
    events = [e["event"] for e in AuditQueries(engine).search_events(category="pools", limit=100).items]
    for name in ("PoolOpened", "PoolJoined", "PoolActivated", "LossShared", "ShareAssigned", "ContributionRecorded",
                 "ContributionConfirmed", "ApportionmentAnchored", "PayoutRecorded", "ClaimPayoutReserved"):
        assert name in events, name


def test_random_losses_never_share_more_than_the_cap_and_shares_always_sum_to_what_is_shared(consortium):
    c = consortium
    rnd = random.Random(2026)
    members = ("insurer_a", "insurer_b", "platform")
    weights = [rnd.randint(1, 97) for _ in members]
    cap, period = 10_000, 7 * DAY
    open_pool(c, members, weights, cap=cap, period=period)
    opened_at = c["auditor"].get_pool(POOL)["opened_at"]
    shared_by_period: dict[int, int] = {}
    for i in range(12):
        insurer = rnd.choice(members)
        cid, root = claim(c, insurer, f"CLM-RND-{i}")
        amount = rnd.choice([1, rnd.randint(1, 3_000), rnd.randint(3_000, 12_000)])
        now_period = (c.now() + 1 - opened_at) // period  # the next block's time, give or take the clock's second
        if shared_by_period.get(now_period, 0) >= cap:
            expect("PeriodCapReached", c[insurer].report_loss, POOL, cid, amount, root)
        else:
            loss = c[insurer].report_loss(POOL, cid, amount, root)
            shared_by_period[loss["period"]] = shared_by_period.get(loss["period"], 0) + loss["shared"]
            assert loss["shared"] == min(amount, cap - (shared_by_period[loss["period"]] - loss["shared"]))
            assert sum(loss["shares"].values()) == loss["shared"]
            assert list(loss["shares"].values()) == apportion_pro_rata(loss["shared"], weights)
        assert all(v <= cap for v in shared_by_period.values())
        if rnd.random() < 0.3:
            c.advance(period)
    for p, total in shared_by_period.items():
        assert c["auditor"].pool_period(POOL, opened_at + p * period)["shared"] == total
