"""Multi-node: a real node process enforces grants on chain, logs every access and denial, refuses bad requests."""
from __future__ import annotations

import time

import pytest
from eth_account import Account
from nodes import deploy_members, start_node

from node.chain.deployment import Purpose, Role
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.client import NodeClient

CLAIMS_CSV = """claim_id,person_id,policy_id,amount,claim_date,status,age_band,region
c1,p1,pol1,1200.50,2026-01-05,paid,30-39,east
c2,p2,pol2,300.00,2026-02-11,open,40-49,west
c3,p3,pol3,90.25,2026-03-20,paid,30-39,east
"""


@pytest.fixture(scope="module")
def network(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("network")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    names = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "platform": Role.PLATFORM, "regulator": Role.REGULATOR}
    keys, _, dep_path = deploy_members(gateway, base, names)
    outsider = Account.create()
    gateway.fund(outsider.address)
    home = base / "insurer_a"
    home.mkdir()
    (home / "claims.csv").write_text(CLAIMS_CSV)
    # three claims: the owner's release floor is lowered to 1 so grants and logs are tested on exact answers
    # (the release rules themselves are tested in test_release_attacks.py)
    node = start_node(home, "insurer_a", base / "keys" / "insurer_a", anvil.url, dep_path, log_flush_seconds=0.1,
                      release_min_cohort=1)
    ledgers = {n: Ledger(gateway, k.account) for n, k in keys.items()}
    import subprocess
    import sys

    from nodes import ROOT
    imported = subprocess.run([sys.executable, "-m", "node.cli", "data", "import", "claims", str(home / "claims.csv"),
                               "--config", str(node.config), "--json"], cwd=ROOT, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    yield {"node": node, "gateway": gateway, "keys": keys, "ledgers": ledgers, "outsider": outsider,
           "owner": keys["insurer_a"].address}
    node.stop()


class OwnerNode:
    """The data owner acting through its own node (the operator API): only the node sends from its account,
    as in production, so the test never races the node for the account's nonces."""

    def __init__(self, net):
        self.net = net

    def grant(self, grantee: str, dataset: bytes, purpose: Purpose, *, expires_at: int) -> int:
        name = {dataset_id(n): n for n in ("claims", "policies", "user_features", "fraud_list")}[dataset]
        r = client(self.net, "insurer_a").request("POST", "/grants", {"grantee": grantee, "dataset": name,
                                                                      "purpose": Purpose(purpose).name, "expires_at": expires_at,
                                                                      "consent_ref": "0x" + "ab" * 32})
        assert r.status_code == 201, r.text
        return r.json()["grant_id"]

    def revoke(self, grant_id: int) -> None:
        r = client(self.net, "insurer_a").request("DELETE", f"/grants/{grant_id}")
        assert r.status_code == 200, r.text


def client(net, who) -> NodeClient:
    account = net["outsider"] if who == "outsider" else net["keys"][who].account
    return NodeClient(net["node"].url, account, net["owner"], net["gateway"].chain_id)


def now(net) -> int:
    return net["gateway"].w3.eth.get_block("latest")["timestamp"]


def wait_on_chain(net, event: str, predicate, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in net["gateway"].events("DataUseAuthorization", event, filters={"owner": net["owner"]})
                 if predicate(e["args"])]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {event} on chain within {timeout} s")


def test_granted_request_is_served_and_its_access_is_on_chain(network):
    net = network
    gid = OwnerNode(net).grant(net["keys"]["platform"].address, dataset_id("claims"), Purpose.STATISTICS,
                                           expires_at=now(net) + 3600)
    r = client(net, "platform").query("claims", "STATISTICS", metric="sum", column="amount", group_by="age_band")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["grant_id"] == gid and body["records"] == 3
    assert {row["group"]: row["value"] for row in body["rows"]} == {"30-39": pytest.approx(1290.75), "40-49": pytest.approx(300.0)}
    events = wait_on_chain(net, "AccessRecorded", lambda a: a["grantId"] == gid)
    assert events[0]["args"]["requester"] == net["keys"]["platform"].address and events[0]["args"]["rows"] == 3


def test_wrong_purpose_and_no_grant_are_refused_and_logged(network):
    net = network
    OwnerNode(net).grant(net["keys"]["insurer_b"].address, dataset_id("claims"), Purpose.FRAUD,
                                      expires_at=now(net) + 3600)
    r = client(net, "insurer_b").query("claims", "PRICING")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "wrong_purpose"
    r = client(net, "regulator").query("claims", "STATISTICS")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "no_grant"
    wait_on_chain(net, "DenialRecorded", lambda a: a["requester"] == net["keys"]["insurer_b"].address and a["purpose"] == Purpose.PRICING)
    wait_on_chain(net, "DenialRecorded", lambda a: a["requester"] == net["keys"]["regulator"].address)


def test_mined_revocation_is_effective_on_the_next_request(network):
    net = network
    ledger = OwnerNode(net)
    gid = ledger.grant(net["keys"]["insurer_b"].address, dataset_id("claims"), Purpose.CLAIMS, expires_at=now(net) + 3600)
    c = client(net, "insurer_b")
    assert c.query("claims", "CLAIMS").status_code == 200
    ledger.revoke(gid)  # returns once mined
    r = c.query("claims", "CLAIMS")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "revoked"
    wait_on_chain(net, "DenialRecorded", lambda a: a["requester"] == net["keys"]["insurer_b"].address and a["reasonCode"] == 2)


def test_unsigned_forged_replayed_and_foreign_requests_get_401(network):
    net = network
    c = client(net, "platform")
    body = {"dataset": "claims", "purpose": "STATISTICS"}
    r = c.request("POST", "/data/query", body, sign=False)
    assert r.status_code == 401 and r.json()["detail"]["reason"] == "unsigned"
    # Forged: platform's headers claim to be insurer_b.
    r = c.request("POST", "/data/query", body, headers={"x-consortium-signer": net["keys"]["insurer_b"].address})
    assert r.status_code == 401 and r.json()["detail"]["reason"] == "bad_signature"
    # Replayed: the same signed bytes twice.
    import json as _json

    from node.access.auth import sign_request
    raw = _json.dumps(body).encode()
    headers = sign_request(net["keys"]["platform"].account, net["gateway"].chain_id, net["owner"], "POST", "/data/query", raw)
    headers["content-type"] = "application/json"
    first = c.http.post("/data/query", content=raw, headers=headers)
    second = c.http.post("/data/query", content=raw, headers=headers)
    assert first.status_code != 401
    assert second.status_code == 401 and second.json()["detail"]["reason"] == "replayed"
    # Signed for another node (audience): refused.
    other = NodeClient(net["node"].url, net["keys"]["platform"].account, net["keys"]["insurer_b"].address, net["gateway"].chain_id)
    r = other.query("claims", "STATISTICS")
    assert r.status_code == 401 and r.json()["detail"]["reason"] == "bad_signature"
    # Tampered body after signing.
    headers = sign_request(net["keys"]["platform"].account, net["gateway"].chain_id, net["owner"], "POST", "/data/query", raw)
    r = c.http.post("/data/query", content=raw.replace(b"claims", b"policies"), headers={**headers, "content-type": "application/json"})
    assert r.status_code == 401


def test_suspended_member_is_refused_and_the_denial_is_on_chain(network):
    net = network
    OwnerNode(net).grant(net["keys"]["platform"].address, dataset_id("claims"), Purpose.PRICING,
                                      expires_at=now(net) + 3600)
    net["ledgers"]["regulator"].suspend(net["keys"]["platform"].address)
    try:
        r = client(net, "platform").query("claims", "PRICING")
        assert r.status_code == 403 and r.json()["detail"]["reason"] == "requester_suspended"
        wait_on_chain(net, "DenialRecorded", lambda a: a["requester"] == net["keys"]["platform"].address and a["reasonCode"] == 8)
    finally:
        net["ledgers"]["regulator"].reinstate(net["keys"]["platform"].address)


def test_expired_and_wrong_dataset_are_refused(network, anvil):
    net = network
    ledger = OwnerNode(net)
    ledger.grant(net["keys"]["regulator"].address, dataset_id("policies"), Purpose.UNDERWRITING, expires_at=now(net) + 3600)
    r = client(net, "regulator").query("claims", "UNDERWRITING")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "wrong_dataset"
    ledger.grant(net["keys"]["regulator"].address, dataset_id("claims"), Purpose.UNDERWRITING, expires_at=now(net) + 30)
    assert client(net, "regulator").query("claims", "UNDERWRITING").status_code == 200
    net["gateway"].w3.provider.make_request("evm_increaseTime", [31])
    net["gateway"].w3.provider.make_request("evm_mine", [])
    r = client(net, "regulator").query("claims", "UNDERWRITING")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "expired"


def test_non_member_is_refused(network):
    r = client(network, "outsider").query("claims", "STATISTICS")
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "requester_not_member"


@pytest.mark.parametrize("raw, expected_status, reason", [
    (b"{not json", 422, "invalid_request"),
    (b'{"dataset": "claims", "purpose": "STATISTICS", "bogus": 1}', 422, "invalid_request"),
    (b'{"dataset": 5, "purpose": "NOPE"}', 422, "invalid_request"),
    (b'{"dataset": "nope", "purpose": "STATISTICS"}', 404, "unknown_dataset"),
    (b'{"dataset": "claims", "purpose": "STATISTICS", "metric": "sum", "column": "status"}', 422, "bad_column"),
])
def test_bad_bodies_get_a_4xx_with_a_reason(network, raw, expected_status, reason):
    from node.access.auth import sign_request

    net = network
    headers = sign_request(net["keys"]["platform"].account, net["gateway"].chain_id, net["owner"], "POST", "/data/query", raw)
    r = client(net, "platform").http.post("/data/query", content=raw, headers={**headers, "content-type": "application/json"})
    assert r.status_code == expected_status, r.text
    assert r.json()["detail"]["reason"] == reason


def test_oversize_body_is_refused_with_413(network):
    c = client(network, "platform")
    r = c.request("POST", "/data/query", {"dataset": "claims", "purpose": "STATISTICS", "scope": "x" * 2_000_000})
    assert r.status_code == 413 and r.json()["detail"]["reason"] == "body_too_large"


def test_only_the_operator_grants_through_the_api(network):
    net = network
    body = {"grantee": net["keys"]["platform"].address, "dataset": "claims", "purpose": "FRAUD", "expires_at": now(net) + 600,
            "consent_ref": "0x" + "ab" * 32}
    r = client(net, "platform").request("POST", "/grants", body)
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "not_operator"
    r = client(net, "insurer_a").request("POST", "/grants", body)
    assert r.status_code == 201, r.text
    gid = r.json()["grant_id"]
    listed = client(net, "platform").request("GET", "/grants", params={"direction": "received"}).json()
    assert gid in [g["grant_id"] for g in listed]
    assert client(net, "insurer_a").request("DELETE", f"/grants/{gid}").status_code == 200
    again = client(net, "insurer_a").request("DELETE", f"/grants/{gid}")
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "AlreadyRevoked"


ENDPOINTS = [("POST", "/grants"), ("POST", "/governance/proposals"), ("PUT", "/governance/endpoint"),
             ("PUT", "/governance/keys"), ("POST", "/governance/members/0x" + "11" * 20 + "/warn"), ("POST", "/data/query"),
             ("POST", "/evidence/hashes"), ("POST", "/evidence/verify")]


@pytest.mark.parametrize("method, path", ENDPOINTS)
@pytest.mark.parametrize("raw", [b"{not json", b'{"unknown_field": 1}', b'[1, 2, 3]', b'{"grantee": 5, "dataset": [], "purpose": 7}',
                                 b"\xff\xfe binary"])
def test_every_endpoint_answers_bad_bodies_with_a_4xx_reason_and_changes_nothing(network, method, path, raw):
    from node.access.auth import sign_request

    net = network
    owner = net["keys"]["insurer_a"].account  # the operator: past the access checks, only the body can be wrong
    grants_before = net["ledgers"]["insurer_a"].grants_given(net["owner"])
    headers = sign_request(owner, net["gateway"].chain_id, net["owner"], method, path, raw)
    r = client(net, "insurer_a").http.request(method, path, content=raw, headers={**headers, "content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert isinstance(r.json()["detail"]["reason"], str)
    assert net["ledgers"]["insurer_a"].grants_given(net["owner"]) == grants_before
