"""DataMarket and Settlement: offers, certificates and their grants, statements, confirmation, payment, guards."""
from __future__ import annotations

import pytest

from node.chain.deployment import Purpose
from node.chain.errors import ContractRevert
from node.chain.ledger import dataset_id
from node.settlement.formula import Figure, Formula, Source

CLAIMS = dataset_id("claims-2026")
DAY = 86_400
FORMULA = Formula(500, 2000, 5000, 3000, 2000, Source.ACCESSES, Source.DECLARED, Source.DECLARED)

# DataUseAuthorization.GrantState
VALID, REVOKED, EXPIRED, GRANTEE_BAD = 0, 2, 4, 6


def reverts(name, fn, *args, **kwargs):
    with pytest.raises(ContractRevert) as e:
        fn(*args, **kwargs)
    assert e.value.name == name, e.value


def offer(c, owner="platform", purpose=Purpose.STATISTICS, term=30 * DAY):
    return c[owner].publish_offer(CLAIMS, purpose, term=term, period_fee=1000, per_access_price=7, per_row_price=1,
                                  per_contribution_price=50, revenue_share_bps=2000, consent_ref=b"\x07" * 32)


def addr(c, name):
    return c.accounts[name].address


def test_purchase_issues_a_non_transferable_certificate_and_its_grant(consortium):
    c = consortium
    oid = offer(c)
    bought = c["insurer_a"].buy_offer(oid)
    cert = c["insurer_a"].get_certificate(bought["certificate_id"])
    assert cert["holder"] == addr(c, "insurer_a") and cert["owner"] == addr(c, "platform")
    grant = c["insurer_a"].get_grant(bought["grant_id"])
    assert (grant.owner, grant.grantee, grant.dataset_id, grant.purpose) == (addr(c, "platform"), addr(c, "insurer_a"),
                                                                             CLAIMS, Purpose.STATISTICS)
    assert grant.expires_at == cert["expires_at"] and grant.consent_ref == b"\x07" * 32
    assert c["insurer_a"].is_authorized(addr(c, "platform"), addr(c, "insurer_a"), CLAIMS, Purpose.STATISTICS)
    market = c["insurer_a"].market
    assert c.gateway.call(market.functions.ownerOf(bought["certificate_id"])) == addr(c, "insurer_a")
    reverts("CertificateNotTransferable", c.gateway.transact, c.accounts["insurer_a"],
            market.functions.transferFrom(addr(c, "insurer_a"), addr(c, "insurer_b"), bought["certificate_id"]))


def test_only_members_offer_and_owner_cannot_buy_its_own(consortium):
    c = consortium
    reverts("NotMember", offer, c, owner="outsider")
    oid = offer(c)
    reverts("OwnOffer", c["platform"].buy_offer, oid)
    reverts("NotOfferOwner", c["insurer_a"].withdraw_offer, oid)
    c["platform"].withdraw_offer(oid)
    reverts("OfferClosed", c["insurer_a"].buy_offer, oid)


def test_only_the_market_creates_or_revokes_market_grants(consortium):
    c = consortium
    dua = c["platform"].authorizations
    reverts("NotMarket", c.gateway.transact, c.accounts["platform"],
            dua.functions.grantFromMarket(addr(c, "platform"), addr(c, "insurer_a"), CLAIMS, 4, b"\x00" * 32, c.now() + DAY,
                                          b"\x00" * 32))
    reverts("NotDeployer", c.gateway.transact, c.accounts["platform"], dua.functions.bindMarket(addr(c, "platform")))


def test_certificate_revocation_expiry_and_holder_suspension_end_the_grant(consortium):
    c = consortium
    oid = offer(c, term=DAY)
    first, second, third = (c["insurer_a"].buy_offer(oid), c["insurer_b"].buy_offer(oid), c["insurer_a"].buy_offer(oid))
    reverts("NotOfferOwner", c["insurer_a"].revoke_certificate, first["certificate_id"])
    c["platform"].revoke_certificate(first["certificate_id"])
    assert c["platform"].grant_status(first["grant_id"]) == REVOKED
    assert not c["platform"].certificate_valid(first["certificate_id"])
    reverts("CertificateAlreadyRevoked", c["platform"].revoke_certificate, first["certificate_id"])
    c["regulator"].suspend(addr(c, "insurer_b"))
    assert c["platform"].grant_status(second["grant_id"]) == GRANTEE_BAD
    reverts("MemberNotInGoodStanding", c["insurer_b"].buy_offer, oid)  # a suspended member cannot buy
    assert c["platform"].grant_status(third["grant_id"]) == VALID
    c.advance(DAY)
    assert c["platform"].grant_status(third["grant_id"]) == EXPIRED


def agreement(c, window=DAY):
    start = c.now()
    aid = c["insurer_a"].propose_agreement(addr(c, "insurer_a"), [addr(c, "platform"), addr(c, "insurer_b")], FORMULA,
                                           period_start=start, period_seconds=DAY, dispute_window=window)
    return aid


def active_agreement(c):
    aid = agreement(c)
    c["platform"].accept_agreement(aid)
    c["insurer_b"].accept_agreement(aid)
    return aid


def test_agreement_needs_every_party_and_a_valid_formula(consortium):
    c = consortium
    bad = Formula.__new__(Formula)
    object.__setattr__(bad, "as_tuple", lambda: (0, 0, 5000, 5000, 1, 0, 0, 0))
    reverts("BadFormula", c["insurer_a"].propose_agreement, addr(c, "insurer_a"), [addr(c, "platform")], bad,
            period_start=0, period_seconds=DAY, dispute_window=DAY)
    reverts("NotParty", c["insurer_b"].propose_agreement, addr(c, "insurer_a"), [addr(c, "platform")], FORMULA,
            period_start=0, period_seconds=DAY, dispute_window=DAY)
    aid = agreement(c)
    reverts("AgreementNotActive", c["insurer_a"].declare_figure, aid, 0, addr(c, "platform"), Figure.PREMIUM, 10)
    reverts("NotParty", c["auditor"].accept_agreement, aid)
    c["platform"].accept_agreement(aid)
    reverts("AlreadyAccepted", c["platform"].accept_agreement, aid)
    c["insurer_b"].accept_agreement(aid)
    assert c["insurer_a"].get_agreement(aid)["state"] == 2


def test_figures_are_declared_by_their_declarer_once(consortium):
    c = consortium
    aid = active_agreement(c)
    reverts("NotDeclarer", c["platform"].declare_figure, aid, 0, addr(c, "platform"), Figure.PREMIUM, 10)
    reverts("NotDeclarer", c["insurer_a"].declare_figure, aid, 0, addr(c, "platform"), Figure.COST, 10)
    c["insurer_a"].declare_figure(aid, 0, addr(c, "platform"), Figure.PREMIUM, 10, b"\x01" * 32)
    reverts("FigureAlreadyDeclared", c["insurer_a"].declare_figure, aid, 0, addr(c, "platform"), Figure.PREMIUM, 11)
    c["platform"].declare_figure(aid, 0, addr(c, "platform"), Figure.COST, 3)


def test_statement_confirmed_by_all_parties_is_paid_and_settles_once(consortium):
    c = consortium
    aid = active_agreement(c)
    reverts("PeriodNotEnded", c["insurer_a"].issue_statement, aid, 0, b"\x09" * 32, [100, 0])
    c.advance(DAY)
    reverts("NotParty", c["auditor"].issue_statement, aid, 0, b"\x09" * 32, [100, 0])
    reverts("LengthMismatch", c["insurer_a"].issue_statement, aid, 0, b"\x09" * 32, [100])
    c["platform"].issue_statement(aid, 0, b"\x09" * 32, [100, 0])
    reverts("StatementExists", c["insurer_a"].issue_statement, aid, 0, b"\x09" * 32, [100, 0])
    reverts("NotParty", c["auditor"].confirm_statement, aid, 0)  # only parties confirm
    reverts("WrongStatementState", c["insurer_a"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    for name in ("insurer_a", "platform"):
        c[name].confirm_statement(aid, 0)
    reverts("AlreadyConfirmed", c["platform"].confirm_statement, aid, 0)
    c["insurer_b"].confirm_statement(aid, 0)
    assert c["insurer_a"].get_statement(aid, 0)["state"] == "CONFIRMED"
    reverts("NotParty", c["platform"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    reverts("NothingToPay", c["insurer_a"].record_payment, aid, 0, addr(c, "insurer_b"), b"\x0a" * 32)
    reverts("NoPaymentRecorded", c["platform"].confirm_payment, aid, 0)
    c["insurer_a"].record_payment(aid, 0, addr(c, "platform"), b"\x0a" * 32)
    reverts("PaymentAlreadyRecorded", c["insurer_a"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    c["platform"].confirm_payment(aid, 0)
    s = c["insurer_a"].get_statement(aid, 0)
    assert s["state"] == "SETTLED" and s["total"] == 100 and s["unpaid"] == 0
    settled = c.gateway.events("Settlement", "PeriodSettled", filters={"agreementId": aid})
    assert [(e["args"]["period"], e["args"]["total"]) for e in settled] == [(0, 100)]
    # a settled period settles once: no new statement, no second payment
    reverts("StatementExists", c["insurer_a"].issue_statement, aid, 0, b"\x0b" * 32, [5, 5])
    reverts("WrongStatementState", c["insurer_a"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    reverts("WrongStatementState", c["platform"].confirm_statement, aid, 0)


def test_disputed_statement_cannot_settle_until_reissued(consortium):
    c = consortium
    aid = active_agreement(c)
    c.advance(DAY)
    c["insurer_a"].issue_statement(aid, 0, b"\x09" * 32, [100, 20])
    c["insurer_a"].confirm_statement(aid, 0)
    c["platform"].confirm_statement(aid, 0)
    c["insurer_b"].dispute_statement(aid, 0, b"\x0d" * 32)
    assert c["insurer_a"].get_statement(aid, 0)["state"] == "DISPUTED"
    reverts("WrongStatementState", c["insurer_b"].confirm_statement, aid, 0)
    reverts("WrongStatementState", c["insurer_a"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    c["insurer_b"].issue_statement(aid, 0, b"\x0e" * 32, [100, 30])
    s = c["insurer_a"].get_statement(aid, 0)
    assert s["state"] == "ISSUED" and s["revision"] == 2 and s["confirmations"] == 0 and s["amounts"] == [100, 30]


def test_window_closes_confirmation_and_a_lapsed_statement_can_be_reissued(consortium):
    c = consortium
    aid = active_agreement(c)
    c.advance(DAY)
    c["insurer_a"].issue_statement(aid, 0, b"\x09" * 32, [1, 2])
    c.advance(DAY)
    reverts("WindowClosed", c["platform"].confirm_statement, aid, 0)
    reverts("WindowClosed", c["platform"].dispute_statement, aid, 0)
    c["platform"].issue_statement(aid, 0, b"\x09" * 32, [1, 2])
    assert c["insurer_a"].get_statement(aid, 0)["revision"] == 2


def test_suspended_member_cannot_be_paid(consortium):
    c = consortium
    aid = active_agreement(c)
    c.advance(DAY)
    c["insurer_a"].issue_statement(aid, 0, b"\x09" * 32, [100, 20])
    for name in ("insurer_a", "platform", "insurer_b"):
        c[name].confirm_statement(aid, 0)
    c["insurer_a"].record_payment(aid, 0, addr(c, "insurer_b"), b"\x0a" * 32)
    c["regulator"].suspend(addr(c, "platform"))
    reverts("PayeeNotInGoodStanding", c["insurer_a"].record_payment, aid, 0, addr(c, "platform"), b"\x0a" * 32)
    c["regulator"].suspend(addr(c, "insurer_b"))
    reverts("MemberNotInGoodStanding", c["insurer_b"].confirm_payment, aid, 0)
    assert c["insurer_a"].get_statement(aid, 0)["state"] == "CONFIRMED"
