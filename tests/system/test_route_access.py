"""Who may call what: every route x {unsigned, non-member key, member, operator, regulator} on a real node.

Policy (deny by default): public are only /health, /ready (without access-log counts) and the OpenAPI
document; reads of the registry's member list, grants and evidence verification need a member in
good standing; the member's own actions need its operator; the audit API needs the regulator. Data and
statistics routes take any valid signature because the data owner's enforcement must see (and log on
chain) a refusal of a non-member: their refusals carry enforcement reasons, not authentication ones.
"""
from __future__ import annotations

import sys

import httpx
import pytest
from nodes import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from benches.fuzz import CALLERS, Network  # noqa: E402

OK = "ok"  # past authorization: any answer but 401/403 (e.g. 404 unknown job, 422 bad body)
ADDR = "0x" + "11" * 20

# route -> expected outcome for (unsigned, outsider, member, operator, regulator); a reason names the refusal.
UNSIGNED = "unsigned"
TABLE = [
    ("GET", "/health", None, (OK, OK, OK, OK, OK)),
    ("GET", "/openapi.json", None, (OK, OK, OK, OK, OK)),
    ("GET", "/governance/members", None, (UNSIGNED, "not_member", OK, OK, OK)),
    ("GET", "/grants", None, (UNSIGNED, "not_member", OK, OK, OK)),
    ("GET", "/grants?direction=received", None, (UNSIGNED, "not_member", OK, OK, OK)),
    ("POST", "/evidence/verify", {"proof": {}, "document_sha256": "00" * 32}, (UNSIGNED, "not_member", OK, OK, OK)),
    ("POST", "/grants", {"grantee": ADDR, "dataset": "claims", "purpose": "CLAIMS", "expires_at": 1},
     (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("DELETE", "/grants/999999", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("POST", "/governance/proposals/999999/votes", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    # past the node, the chain guards cards: an insurer node's operator is refused by the registry itself
    ("POST", f"/governance/members/{ADDR}/warn", {"reason": "x"},
     (UNSIGNED, "not_operator", "not_operator", "NotRegulator", "not_operator")),
    ("PUT", "/governance/endpoint", {"endpoint": ""}, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("POST", "/evidence/hashes", {"items": []}, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/evidence/receipts/CLM-1", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/evidence/proofs/CLM-1", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/evidence/status", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/evidence/claims/CLM-1/history", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/settlement/earnings", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/stats/jobs", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/stats/jobs/nope", None, (UNSIGNED, "not_operator", "not_operator", OK, "not_operator")),
    ("GET", "/audit/logs", None, (UNSIGNED, "not_regulator", "not_regulator", "not_regulator", OK)),
    ("GET", "/audit/status", None, (UNSIGNED, "not_regulator", "not_regulator", "not_regulator", OK)),
    ("GET", "/audit/logs/export", None, (UNSIGNED, "not_regulator", "not_regulator", "not_regulator", OK)),
    # the owner's proof of a denial: the regulator only (404 here: no denial with this digest)
    ("GET", "/denials/0x" + "00" * 32 + "/request", None,
     (UNSIGNED, "not_regulator", "not_regulator", "not_regulator", OK)),
    ("GET", "/audit/anomalies", None, (UNSIGNED, "not_regulator", "not_regulator", "not_regulator", OK)),
    # enforcement decides (and logs on chain): a non-member is refused as one, by the data owner's rules
    ("POST", "/data/query", {"dataset": "claims", "purpose": "CLAIMS"},
     (UNSIGNED, "requester_not_member", "no_grant", "no_grant", "no_grant")),
]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = Network.start(tmp_path_factory.mktemp("access"), node_names=("insurer-east",))
    yield network
    network.stop()


def _outcome(response: httpx.Response) -> str:
    if response.status_code not in (401, 403):
        return OK
    return response.json()["detail"]["reason"]


@pytest.mark.parametrize("method, path, body, expected", TABLE, ids=[f"{m} {p}" for m, p, _, _ in TABLE])
def test_route_access_table(net, method, path, body, expected):
    got = []
    for caller in CALLERS:
        client = net.client("operator" if caller == "unsigned" else caller, "insurer-east")
        response = client.request(method, path, body, sign=caller != "unsigned")
        assert response.status_code < 500, (caller, response.text)
        got.append(_outcome(response))
    assert tuple(got) == expected


def test_every_route_of_the_api_is_in_the_table(net):
    spec = httpx.get(net.nodes["insurer-east"].url + "/openapi.json").json()
    covered = {p.split("?")[0].split("/")[1] for _, p, _, _ in TABLE}
    assert {p.split("/")[1] for p in spec["paths"]} <= covered | {"ready"}


def test_ready_shows_access_log_counts_to_the_operator_only(net):
    url = net.nodes["insurer-east"].url
    assert set(httpx.get(url + "/ready").json()) == {"status", "block"}
    assert "access_log" in net.client("operator", "insurer-east").request("GET", "/ready").json()
    for caller in ("outsider", "member", "regulator"):
        r = net.client(caller, "insurer-east").request("GET", "/ready")
        assert r.status_code == 403 and r.json()["detail"]["reason"] == "not_operator"
