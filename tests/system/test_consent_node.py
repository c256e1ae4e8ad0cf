"""Consent bound to its grant, through the owners' own node APIs (issue 10 item 4), on real node processes.

The four abuses seen — a consent used by another owner, for another grantee, a second time, and for
another purpose — each get a refusal with a machine-readable reason, and none of them creates a grant.
"""
from __future__ import annotations

import pytest
from eth_account import Account
from nodes import deploy_members, start_node

from node.access.consent import Consent, scope_hash, sign_consent
from node.chain.deployment import Purpose, Role
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.client import NodeClient

SCOPE = "claims: count by age_band"


@pytest.fixture(scope="module")
def owners(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("consent-node")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    roles = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "platform": Role.PLATFORM}
    keys, deployment, dep_path = deploy_members(gateway, base, roles)
    nodes = {n: start_node(base / n, n, base / "keys" / n, anvil.url, dep_path) for n in ("insurer_a", "insurer_b")}
    try:
        yield {"gateway": gateway, "keys": keys, "nodes": nodes, "contract": deployment.contracts["DataUseAuthorization"],
               "ledger": Ledger(gateway, keys["platform"].account)}
    finally:
        for node in nodes.values():
            node.stop()


def operator(o, owner: str) -> NodeClient:
    return NodeClient(o["nodes"][owner].url, o["keys"][owner].account, o["keys"][owner].address, o["gateway"].chain_id)


def subject_consent(o, *, owner="insurer_a", grantee="platform", purpose=Purpose.STATISTICS) -> dict:
    """A data subject's signed consent to (owner -> grantee, claims, purpose, SCOPE) for 30 days."""
    subject = Account.create()
    terms = Consent(subject.address, o["keys"][owner].address, o["keys"][grantee].address, "0x" + dataset_id("claims").hex(),
                    int(purpose), scope_hash(SCOPE), o["gateway"].block_time() + 30 * 86400)
    return sign_consent(subject, terms, o["gateway"].chain_id, o["contract"]).document()


def post_grant(o, owner: str, grantee: str, purpose: str, **consent):
    body = {"grantee": o["keys"][grantee].address, "dataset": "claims", "purpose": purpose, "scope": SCOPE,
            "expires_at": o["gateway"].block_time() + 86400, **consent}
    return operator(o, owner).request("POST", "/grants", body)


def grants_received(o) -> list[int]:
    return o["ledger"].grants_received(o["keys"]["platform"].address) + o["ledger"].grants_received(o["keys"]["insurer_b"].address)


def test_seen_consent_abuses_are_refused_by_the_owners_node_with_a_reason(owners):
    o = owners
    consent = subject_consent(o)  # (insurer_a -> platform, claims, STATISTICS)
    before = grants_received(o)
    # (abuse, owner whose node is asked, grantee, purpose, consent, (status, reason, detail in the message))
    rows = [
        ("seen: another owner", "insurer_b", "platform", "STATISTICS", consent, (403, "ConsentMismatch", "field=0")),
        ("seen: another grantee", "insurer_a", "insurer_b", "STATISTICS", consent, (403, "ConsentMismatch", "field=1")),
        ("seen: FRAUD consent for a PRICING grant", "insurer_a", "platform", "PRICING", subject_consent(o, purpose=Purpose.FRAUD),
         (403, "ConsentMismatch", "field=3")),
    ]
    for abuse, owner, grantee, purpose, doc, (status, reason, detail) in rows:
        r = post_grant(o, owner, grantee, purpose, consent=doc)
        assert (r.status_code, r.json()["detail"]["reason"]) == (status, reason), (abuse, r.text)
        assert detail in r.json()["detail"]["message"], abuse
    assert grants_received(o) == before  # none of them made a grant

    # seen: replay. The consent fits exactly one grant; offered again, it is refused.
    first = post_grant(o, "insurer_a", "platform", "STATISTICS", consent=consent)
    assert first.status_code == 201, first.text
    again = post_grant(o, "insurer_a", "platform", "STATISTICS", consent=consent)
    assert again.status_code == 403 and again.json()["detail"]["reason"] == "ConsentAlreadyUsed"
    assert grants_received(o) == before + [first.json()["grant_id"]]


def test_a_grant_without_a_valid_consent_document_is_refused_before_the_chain(owners):
    o = owners
    forged = subject_consent(o)
    forged["consent"]["signer"] = Account.create().address  # someone else claims to have consented
    rows = [
        ("no consent at all", {}, "consent_required"),
        ("two consent forms", {"consent": subject_consent(o), "consent_ref": "0x" + "11" * 32}, "consent_required"),
        ("signature not the named signer's", {"consent": forged}, "bad_consent_signature"),
        ("not a consent document", {"consent": {"hello": 1}}, "bad_consent"),
        ("empty batch", {"consent_records": []}, "bad_consent"),
    ]
    for case, consent, reason in rows:
        r = post_grant(o, "insurer_a", "platform", "STATISTICS", **consent)
        assert r.status_code == 422 and r.json()["detail"]["reason"] == reason, (case, r.text)


def test_the_owner_attests_its_own_batch_for_exactly_one_grant(owners):
    o = owners
    records = [{"subject": f"P{i:05d}", "app": "platform", "scope": SCOPE} for i in range(50)]
    r = post_grant(o, "insurer_a", "platform", "CLAIMS", consent_records=records)
    assert r.status_code == 201, r.text
    grant = o["ledger"].get_grant(r.json()["grant_id"])
    assert "0x" + grant.consent_ref.hex() == r.json()["consent_ref"]
    assert o["ledger"].consent_used_by(grant.consent_ref) == grant.grant_id
