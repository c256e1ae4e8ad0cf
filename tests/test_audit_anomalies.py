"""Anomalies are raised on crafted histories, and only there."""
from __future__ import annotations

import os

from node.audit.anomalies import AnomalyDetector, AnomalyRules
from node.audit.indexer import AuditIndexer
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason
from node.store.db import create_store_engine

CLAIMS = dataset_id("claims")


def _detect(consortium, tmp_path, rules=None, **kw):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditIndexer(engine, consortium.gateway, consortium.deployment, grace_seconds=30).sync()
    return AnomalyDetector(engine, rules).find(**kw)["anomalies"]


def _access(c, owner, grant_id, n=1):
    c[owner].record_access_batch([grant_id] * n, [os.urandom(32) for _ in range(n)], [1] * n).wait()


def test_use_outside_a_grants_window_is_flagged_and_use_inside_is_not(consortium, tmp_path):
    c = consortium
    platform, insurer_b = c.accounts["platform"].address, c.accounts["insurer_b"].address
    early = c["insurer_a"].grant(platform, CLAIMS, Purpose.CLAIMS, not_before=c.now() + 3_600, expires_at=c.now() + 7_200)
    _access(c, "insurer_a", early)  # before notBefore
    fine = c["insurer_a"].grant(insurer_b, CLAIMS, Purpose.PRICING, expires_at=c.now() + 100_000)
    _access(c, "insurer_a", fine, 3)
    expiring = c["insurer_a"].grant(platform, CLAIMS, Purpose.FRAUD, expires_at=c.now() + 60)
    _access(c, "insurer_a", expiring)  # inside
    c.advance(75)
    _access(c, "insurer_a", expiring)  # after expiry, but within the logging grace: not flagged
    c.advance(120)
    _access(c, "insurer_a", expiring, 2)  # well after expiry
    revoked = c["insurer_a"].grant(insurer_b, CLAIMS, Purpose.UNDERWRITING, expires_at=c.now() + 100_000)
    c["insurer_a"].revoke(revoked)
    c.advance(120)
    _access(c, "insurer_a", revoked)
    found = {(a["grant_id"], a["reason"]): a for a in _detect(c, tmp_path, kinds=["outside_grant_window"])}
    assert set(found) == {(early, "before_not_before"), (expiring, "after_expiry"), (revoked, "after_revocation")}
    assert found[(expiring, "after_expiry")]["count"] == 2
    assert found[(early, "before_not_before")]["subject"] == platform
    assert found[(revoked, "after_revocation")]["owner"] == c.accounts["insurer_a"].address


def test_a_burst_of_denials_is_flagged_and_spread_denials_are_not(consortium, tmp_path):
    c = consortium
    burst, slow = c.accounts["outsider"].address, c.accounts["platform"].address

    def deny(requester, n):
        c["insurer_a"].record_denial_batch([requester] * n, [CLAIMS] * n, [Purpose.CLAIMS] * n,
                                           [int(DenialReason.NO_GRANT)] * n, [os.urandom(32) for _ in range(n)]).wait()

    for _ in range(6):
        deny(slow, 1)
        c.advance(30)  # 6 denials, but never 5 within 60 s
    deny(burst, 4)
    c.advance(20)
    deny(burst, 3)
    found = _detect(c, tmp_path, kinds=["denial_burst"])
    assert [(a["subject"], a["count"]) for a in found] == [(burst, 7)]


def test_an_access_volume_spike_against_the_members_own_baseline(consortium, tmp_path):
    c = consortium
    spiky, steady = c.accounts["platform"].address, c.accounts["insurer_b"].address
    g1 = c["insurer_a"].grant(spiky, CLAIMS, Purpose.STATISTICS, expires_at=c.now() + 30 * 86_400)
    g2 = c["insurer_a"].grant(steady, CLAIMS, Purpose.STATISTICS, expires_at=c.now() + 30 * 86_400)
    for day, (n1, n2) in enumerate([(10, 60), (12, 60), (9, 60), (100, 70)]):
        _access(c, "insurer_a", g1, n1)
        _access(c, "insurer_a", g2, n2)
        if day < 3:
            c.advance(86_400)
    found = _detect(c, tmp_path, kinds=["volume_spike"])
    assert [(a["subject"], a["count"]) for a in found] == [(spiky, 100)]
    assert 9 <= found[0]["baseline"] <= 12
    # a stricter factor would also leave the steady member alone, a looser one flags nothing at all
    assert _detect(c, tmp_path, AnomalyRules(spike_factor=20), kinds=["volume_spike"]) == []


def test_small_cohort_and_repeated_statistics_jobs(consortium, tmp_path):
    c = consortium
    a, b, p = (c.accounts[n].address for n in ("insurer_a", "insurer_b", "platform"))
    deadline = c.now() + 86_400
    small = c["platform"].open_job(os.urandom(32), [a, b], os.urandom(32), 2, deadline)
    lonely = c["platform"].open_job(os.urandom(32), [a], os.urandom(32), 20, deadline)
    c["platform"].open_job(os.urandom(32), [a, b], os.urandom(32), 20, deadline)  # fine on its own
    repeated = [c["insurer_b"].open_job(os.urandom(32), [a, p], os.urandom(32), 20, deadline) for _ in range(3)]
    spec = os.urandom(32)
    same_spec = [c["insurer_a"].open_job(spec, [b, p], os.urandom(32), 20, deadline) for _ in range(2)]
    found = _detect(c, tmp_path, kinds=["small_cohort_job", "repeated_job"])
    small_jobs = sorted(x["job_id"] for x in found if x["kind"] == "small_cohort_job")
    assert small_jobs == sorted([small, lonely])
    repeats = {x["subject"]: x for x in found if x["kind"] == "repeated_job"}
    assert set(repeats) == {b, a}  # platform's 3 jobs differ in participants: [a,b], [a], [a,b] -> only 2 alike
    assert repeats[b]["job_ids"] == repeated
    assert repeats[a]["job_ids"] == same_spec and "spec hash" in repeats[a]["detail"]


def test_a_quiet_history_raises_nothing(consortium, tmp_path):
    c = consortium
    g = c["insurer_a"].grant(c.accounts["platform"].address, CLAIMS, Purpose.CLAIMS, expires_at=c.now() + 3_600)
    _access(c, "insurer_a", g, 5)
    assert _detect(c, tmp_path) == []
