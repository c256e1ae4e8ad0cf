"""Anomalies are raised on crafted histories, and only there."""
from __future__ import annotations

import hashlib
import os

from node.access.auth import HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, request_digest, sign_request
from node.access.signed_request import SignedRequest
from node.audit.anomalies import AnomalyDetector, AnomalyRules
from node.audit.denial_proofs import DenialProofs, OwnerUnreachable
from node.audit.indexer import AuditIndexer
from node.chain.deployment import Purpose
from node.chain.ledger import dataset_id
from node.chain.reasons import DenialReason
from node.store.db import create_store_engine

CLAIMS = dataset_id("claims")


def _detect(consortium, tmp_path, rules=None, owners_store=None, **kw):
    """Index the chain, prove its denials against ``owners_store`` (what each owner kept), find anomalies."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    AuditIndexer(engine, consortium.gateway, consortium.deployment, grace_seconds=30).sync()
    store = owners_store if owners_store is not None else {}
    DenialProofs(engine, consortium.gateway.chain_id, lambda owner, digest: _produce(store, owner, digest)).check(100_000)
    return AnomalyDetector(engine, rules).find(**kw)["anomalies"]


def _produce(store, owner, digest):
    kept = store.get((owner, digest))
    if kept == "down":
        raise OwnerUnreachable(f"{owner} is down")
    return kept


def signed_request(c, requester, owner, *, signer=None, audience=None, body=b'{"dataset": "claims"}') -> SignedRequest:
    """A request signed by ``signer`` (default: the requester) for ``audience`` (default: the owner's node)."""
    account = c.accounts[signer or requester]
    audience = c.accounts[audience or owner].address
    h = sign_request(account, c.gateway.chain_id, audience, "POST", "/data/query", body)
    ts, nonce, sig = int(h[HEADER_TIMESTAMP]), bytes.fromhex(h[HEADER_NONCE]), bytes.fromhex(h[HEADER_SIGNATURE])
    digest = request_digest(c.gateway.chain_id, "POST", "/data/query", hashlib.sha256(body).digest(), ts, nonce, audience)
    return SignedRequest(c.accounts[requester].address, "POST", "/data/query", body, ts, nonce, sig, digest)


def deny_with_proof(c, store, owner, requester, n=1):
    """``n`` genuine denials: each with the digest of a request the requester signed, kept by the owner."""
    requests = [signed_request(c, requester, owner) for _ in range(n)]
    for r in requests:
        store[(c.accounts[owner].address, r.digest)] = r.document()
    c[owner].record_denial_batch([c.accounts[requester].address] * n, [CLAIMS] * n, [Purpose.CLAIMS] * n,
                                 [int(DenialReason.NO_GRANT)] * n, [r.digest for r in requests]).wait()


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
    store: dict = {}
    for _ in range(6):
        deny_with_proof(c, store, "insurer_a", "platform", 1)
        c.advance(30)  # 6 denials, but never 5 within 60 s
    deny_with_proof(c, store, "insurer_a", "insurer_b", 4)
    c.advance(20)
    deny_with_proof(c, store, "insurer_a", "insurer_b", 3)
    found = _detect(c, tmp_path, owners_store=store, kinds=["denial_burst", "unproven_denial"])
    assert [(a["kind"], a["subject"], a["count"]) for a in found] == [("denial_burst", c.accounts["insurer_b"].address, 7)]


def test_each_denial_is_proven_by_the_requesters_signed_request_or_flagged(consortium, tmp_path):
    """Issue 11 item 4: an owner fabricated 30 denials naming an innocent member, who became a denial_burst."""
    c = consortium
    owner = c.accounts["insurer_a"].address
    store: dict = {}

    def record(requester, digests):
        n = len(digests)
        c["insurer_a"].record_denial_batch([c.accounts[requester].address] * n, [CLAIMS] * n, [Purpose.CLAIMS] * n,
                                           [int(DenialReason.NO_GRANT)] * n, digests).wait()

    def kept(request, as_document=None):
        store[(owner, request.digest)] = as_document or request.document()
        return request.digest

    genuine = signed_request(c, "insurer_b", "insurer_a")
    # (case, requester named on chain, digests recorded, expected status of each)
    rows = [
        ("genuine denial", "insurer_b", [kept(genuine)], "proven"),
        ("fabricated: no request behind 30 denials", "platform", [os.urandom(32) for _ in range(30)], "no_request"),
        ("fabricated: zero hash", "platform", [bytes(32)], "no_request"),
        ("request produced but signed by someone else", "platform",
         [kept(signed_request(c, "platform", "insurer_a", signer="insurer_a"))], "not_signed_by_requester"),
        ("requester's genuine request to another node", "platform",
         [kept(signed_request(c, "platform", "insurer_a", audience="insurer_b"))], "digest_mismatch"),
        ("one genuine request recorded as a second denial", "insurer_b", [genuine.digest], "replayed"),
        ("answer that is not a signed request", "platform", [kept(signed_request(c, "platform", "insurer_a"), {"x": 1})],
         "malformed_request"),
    ]
    for _, requester, digests, _ in rows:
        record(requester, digests)
    found = _detect(c, tmp_path, owners_store=store, kinds=["denial_burst", "unproven_denial"])
    by_reason = {a["reason"]: a for a in found if a["kind"] == "unproven_denial"}
    for case, requester, digests, status in rows:
        if status == "proven":
            assert status not in by_reason, case
            continue
        flagged = by_reason[status]
        assert flagged["subject"] == owner and flagged["requester"] == c.accounts[requester].address, case
    assert by_reason["no_request"]["count"] == 31
    # 30 + fabricated denials in one block name the innocent member: no denial_burst against it.
    assert not [a for a in found if a["kind"] == "denial_burst"]


def test_an_unreachable_owner_is_flagged_then_proven_once_it_answers(consortium, tmp_path):
    c = consortium
    owner = c.accounts["insurer_a"].address
    store: dict = {}
    request = signed_request(c, "platform", "insurer_a")
    c["insurer_a"].record_denial_batch([c.accounts["platform"].address], [CLAIMS], [Purpose.CLAIMS],
                                       [int(DenialReason.NO_GRANT)], [request.digest]).wait()
    store[(owner, request.digest)] = "down"
    assert [a["reason"] for a in _detect(c, tmp_path, owners_store=store, kinds=["unproven_denial"])] == ["unreachable"]
    store[(owner, request.digest)] = request.document()
    assert _detect(c, tmp_path, owners_store=store, kinds=["unproven_denial"]) == []


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
