"""The authorization cache: shared chain looks never hide a change mined before a request arrived."""
from __future__ import annotations

import time

from node.authz_cache import AuthorizationCache
from node.chain.deployment import Purpose, Status
from node.chain.ledger import dataset_id

CLAIMS = dataset_id("claims")


def test_cache_serves_repeats_and_sees_a_revocation_mined_before_the_next_request(consortium):
    c = consortium
    owner, grantee = c["insurer_a"], c.accounts["platform"].address
    gid = owner.grant(grantee, CLAIMS, Purpose.STATISTICS, expires_at=c.now() + 3600)
    cache = AuthorizationCache(owner)
    cache.sync()
    assert cache.grant(owner.address, grantee, CLAIMS, Purpose.STATISTICS) == gid
    misses = cache.misses
    assert cache.grant(owner.address, grantee, CLAIMS, Purpose.STATISTICS) == gid
    assert cache.misses == misses  # served from the cache
    owner.revoke(gid)  # mined here, before the next request arrives
    cache.sync(time.monotonic())
    assert cache.grant(owner.address, grantee, CLAIMS, Purpose.STATISTICS) == 0


def test_a_chain_look_is_shared_only_by_requests_that_arrived_before_it_started(consortium, monkeypatch):
    c = consortium
    cache = AuthorizationCache(c["insurer_a"])
    calls = []
    real = c["insurer_a"].gateway.raw_request
    monkeypatch.setattr(c["insurer_a"].gateway, "raw_request", lambda m, p: calls.append(m) or real(m, p))
    early = time.monotonic()
    cache.sync()  # started after `early`
    looks = calls.count("eth_blockNumber")
    cache.sync(early)  # arrived before that look started: it may share it
    assert calls.count("eth_blockNumber") == looks
    cache.sync(time.monotonic())  # arrived after: needs a look of its own
    assert calls.count("eth_blockNumber") == looks + 1


def test_a_suspension_clears_cached_membership(consortium):
    c = consortium
    cache = AuthorizationCache(c["insurer_a"])
    cache.sync()
    assert cache.member_status(c.accounts["platform"].address) == Status.ACTIVE
    c["regulator"].suspend(c.accounts["platform"].address)
    cache.sync(time.monotonic())
    assert cache.member_status(c.accounts["platform"].address) == Status.SUSPENDED


def test_a_grant_past_its_expiry_is_not_served_from_the_cache(consortium):
    c = consortium
    owner, grantee = c["insurer_a"], c.accounts["platform"].address
    gid = owner.grant(grantee, CLAIMS, Purpose.PRICING, expires_at=c.now() + 30)
    cache = AuthorizationCache(owner)
    cache.sync()
    assert cache.grant(owner.address, grantee, CLAIMS, Purpose.PRICING) == gid
    c.advance(31)  # no grant event, only time: the cached window itself must refuse
    cache.sync(time.monotonic())
    assert cache.grant(owner.address, grantee, CLAIMS, Purpose.PRICING) == 0
