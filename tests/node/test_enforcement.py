"""The enforcer (node/access/enforcement.py): one row per denial reason it can produce, each asserting the exact reason.

Every row builds its chain state on the session's anvil (a fresh consortium per test), then asks the data
owner's enforcer, with and without the authorization cache, for the decision on one request. The reasons the
enforcer never produces are listed in ELSEWHERE with the module that produces them and the test that checks it;
a test below fails when DenialReason gains a value that is in neither list.
"""
from __future__ import annotations

from typing import Callable

import pytest

from node.access.authz_cache import AuthorizationCache
from node.access.enforcement import Enforcer
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason

HOUR = 3600
OWNER = "insurer_a"
CLAIMS, POLICIES = "claims-2026", "policies-2026"

# Reasons written on chain by someone other than the enforcer, and where they are tested.
ELSEWHERE = {
    DenialReason.SCOPE_EXCEEDED: "node/access/release_gate.py (scope of the grant) -- tests/system/test_release_attacks.py",
    DenialReason.BUDGET_EXHAUSTED: "node/access/release_gate.py (epsilon budget) -- tests/node/test_release_gate.py",
    DenialReason.TOO_FEW_CONTRIBUTORS: "node/access/release_gate.py (contributor rules) -- tests/node/test_release_gate.py",
    DenialReason.NOT_LABEL_OWNER: "node/access/release_gate.py (vertical jobs) -- tests/node/test_release_gate.py",
    DenialReason.DIFFERENCING: "node/access/release_gate.py (differencing) -- tests/node/test_release_gate.py",
    # A request that fails authentication never reaches the enforcer: it is refused with 401 and a reason
    # by node/access/auth.py before anyone is attributed, so no denial is logged on chain for it
    # (tests/node/test_auth.py: tampering, replay, malformed headers).
    DenialReason.BAD_SIGNATURE: "node/access/auth.py (401, not logged) -- tests/node/test_auth.py",
    DenialReason.REPLAYED: "node/access/auth.py (401, not logged) -- tests/node/test_auth.py",
}


def _grant(c, *, owner=OWNER, grantee="platform", dataset=CLAIMS, purpose=Purpose.STATISTICS, not_before=0, lifetime=HOUR):
    expires = (not_before or c.now()) + lifetime
    return c[owner].grant(c.accounts[grantee].address, dataset_id(dataset), purpose, expires_at=expires, not_before=not_before)


def _none(c):
    pass


def _grant_from_another_owner(c):
    _grant(c, owner="insurer_b")


def _revoked(c):
    c[OWNER].revoke(_grant(c))


def _not_yet_valid(c):
    _grant(c, not_before=c.now() + HOUR)


def _expired(c):
    _grant(c, lifetime=100)
    c.advance(101)


def _wrong_purpose(c):
    _grant(c, purpose=Purpose.PRICING)


def _wrong_dataset(c):
    _grant(c, dataset=POLICIES)


def _requester_suspended(c):
    _grant(c)
    c["regulator"].suspend(c.accounts["platform"].address)


def _owner_suspended(c):
    _grant(c)
    c["regulator"].suspend(c.accounts[OWNER].address)


# (setup, requester, expected reason); the request is always (requester, CLAIMS, STATISTICS) to OWNER's node
DENIALS: list[tuple[str, Callable, str, DenialReason]] = [
    ("no grant at all", _none, "platform", DenialReason.NO_GRANT),
    ("a grant from another owner only", _grant_from_another_owner, "platform", DenialReason.NO_GRANT),
    ("grant revoked", _revoked, "platform", DenialReason.REVOKED),
    ("grant not valid yet", _not_yet_valid, "platform", DenialReason.NOT_YET_VALID),
    ("grant expired", _expired, "platform", DenialReason.EXPIRED),
    ("grant for another purpose", _wrong_purpose, "platform", DenialReason.WRONG_PURPOSE),
    ("grant for another dataset", _wrong_dataset, "platform", DenialReason.WRONG_DATASET),
    ("requester is not a member", _none, "outsider", DenialReason.REQUESTER_NOT_MEMBER),
    ("candidate not yet admitted", _none, "candidate", DenialReason.REQUESTER_NOT_MEMBER),
    ("requester suspended, grant in place", _requester_suspended, "platform", DenialReason.REQUESTER_SUSPENDED),
    ("owner suspended, grant in place", _owner_suspended, "platform", DenialReason.OWNER_SUSPENDED),
]


def _enforcer(c, cached: bool) -> Enforcer:
    ledger = c[OWNER]
    return Enforcer(ledger, AuthorizationCache(ledger) if cached else None)


@pytest.mark.parametrize("cached", [False, True], ids=["chain", "cache"])
@pytest.mark.parametrize("setup,requester,reason", [row[1:] for row in DENIALS], ids=[row[0] for row in DENIALS])
def test_each_denial_gives_its_exact_reason(consortium, cached, setup, requester, reason):
    setup(consortium)
    decision = _enforcer(consortium, cached).decide(consortium.accounts[requester].address, CLAIMS, Purpose.STATISTICS)
    assert not decision.allowed
    assert decision.grant_id == 0
    assert decision.reason is reason
    assert decision.message != reason.name.lower()  # a sentence of its own, not the enum's name


@pytest.mark.parametrize("cached", [False, True], ids=["chain", "cache"])
def test_a_valid_grant_allows_and_names_the_grant(consortium, cached):
    gid = _grant(consortium)
    decision = _enforcer(consortium, cached).decide(consortium.accounts["platform"].address, CLAIMS, Purpose.STATISTICS)
    assert decision.allowed and decision.grant_id == gid and decision.reason is None
    assert decision.message == f"authorized by grant {gid}"


@pytest.mark.parametrize("cached", [False, True], ids=["chain", "cache"])
def test_a_warned_requester_is_still_served(consortium, cached):
    """A yellow card is a warning, not a suspension: the grant keeps working."""
    gid = _grant(consortium)
    consortium["regulator"].warn(consortium.accounts["platform"].address)
    decision = _enforcer(consortium, cached).decide(consortium.accounts["platform"].address, CLAIMS, Purpose.STATISTICS)
    assert decision.allowed and decision.grant_id == gid


def test_the_exact_grant_decides_over_a_neighbour_for_another_purpose(consortium):
    """A revoked exact grant is REVOKED, even when the owner also granted the dataset for another purpose."""
    c = consortium
    _grant(c, purpose=Purpose.PRICING)
    c[OWNER].revoke(_grant(c))
    decision = _enforcer(c, False).decide(c.accounts["platform"].address, CLAIMS, Purpose.STATISTICS)
    assert decision.reason is DenialReason.REVOKED


def test_every_denial_reason_is_in_the_table_or_listed_as_produced_elsewhere():
    produced = {row[3] for row in DENIALS}
    assert not produced & set(ELSEWHERE)
    assert produced | set(ELSEWHERE) == set(DenialReason)
