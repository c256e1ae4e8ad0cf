"""Bad input never gets a 5xx: the known cases as a table, then a bounded fuzzing profile (CI) against
real node processes — schemathesis on the OpenAPI signed as every kind of caller, and a raw-body
fuzzer for the routes that parse their own body — and the stores are intact afterwards.

The longer profile is a benchmark: ``python scripts/bench.py fuzz --json``.
"""
from __future__ import annotations

import sys

import pytest
from nodes import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from benches.fuzz import Network, fuzz_network  # noqa: E402

BIG = str(2**64)
# (caller, method, path, JSON body or raw bytes, expected status, expected reason or None for any reason)
KNOWN_500S = [
    ("member", "POST", "/stats/contribute", b"[1, 2]", 422, "invalid_request"),
    ("member", "POST", "/stats/fraud", b'"text"', 422, "invalid_request"),
    ("member", "POST", "/stats/vertical/start", b"7", 422, "invalid_request"),
    ("member", "POST", "/stats/vertical/double?job=" + BIG, b"{}", 422, "invalid_request"),
    ("operator", "POST", "/stats/jobs", {"kind": "horizontal", "dataset": ["claims"], "participants": ["insurer-west"]},
     422, None),
    ("operator", "DELETE", "/grants/-1", None, 422, "invalid_request"),
    ("operator", "DELETE", "/grants/" + BIG * 2, None, 422, "invalid_request"),
    ("operator", "POST", "/governance/proposals/-3/votes", None, 422, "invalid_request"),
    ("operator", "POST", "/governance/members/0x" + "zz" * 20 + "/warn", {"reason": ""}, 422, "bad_address"),
    ("operator", "POST", "/governance/proposals", {"candidate": "0x" + "11" * 20, "name": "x", "role": "INSURER",
                                                  "lifetime_seconds": 2**70}, 422, "invalid_request"),
    ("regulator", "GET", "/audit/logs?since=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs?until=-" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs?grant_id=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs?grant_id=-1", None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs?cursor=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs?as_of=" + BIG, None, 422, None),
    ("regulator", "GET", "/audit/logs/export?format=csv&since=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/logs/export?format=csv&grant_id=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/events?grant_id=" + BIG, None, 422, "invalid_request"),
    ("regulator", "GET", "/audit/events?cursor=" + BIG, None, 422, "invalid_filter"),
    ("regulator", "GET", "/audit/verify?from_block=-1", None, 422, "invalid_request"),
    ("regulator", "GET", "/audit/aggregates?since=" + BIG, None, 422, "invalid_filter"),
    ("operator", "POST", "/evidence/hashes", {"sha256": "00" * 32, "claim_id": "CLM/1", "doc_type": "invoice"},
     422, "invalid_claim_id"),
    ("operator", "POST", "/evidence/documents?claim_id=..&doc_type=invoice", b"pdf", 422, "invalid_claim_id"),
]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = Network.start(tmp_path_factory.mktemp("fuzz"))
    network.import_claims("insurer-east")
    yield network
    network.stop()


@pytest.mark.parametrize("caller, method, path, body, status, reason", KNOWN_500S,
                         ids=[f"{m} {p[:60]}" for _, m, p, *_ in KNOWN_500S])
def test_known_bad_inputs_get_a_4xx_with_a_reason(net, caller, method, path, body, status, reason):
    node = "regulator" if path.startswith("/audit") else "insurer-east"
    client = net.client(caller, node)
    if isinstance(body, bytes):
        r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.request(method, path, body)
    assert r.status_code == status, r.text
    assert r.json()["detail"]["reason"] == (reason or r.json()["detail"]["reason"]) and r.json()["detail"]["message"]


def test_evidence_ids_with_spaces_percent_and_non_ascii_round_trip_through_the_client(net):
    client = net.client("operator", "insurer-east")
    for claim in ("CLM 2026 #7", "理赔-0042", "100%-ok", "a?b=c&d"):
        r = client.request("POST", "/evidence/hashes", {"sha256": "ab" * 32, "claim_id": claim, "doc_type": "invoice"})
        assert r.status_code == 200, r.text
        receipts = client.request("GET", f"/evidence/receipts/{claim.replace('%', '%25').replace('?', '%3F').replace('#', '%23')}")
        assert receipts.status_code == 200 and receipts.json()["claim_id"] == claim, receipts.text


def test_bounded_fuzzing_finds_no_5xx_no_hang_and_leaves_the_stores_intact(net):
    result = fuzz_network(net, examples=7, raw=16, seed=11)
    print({k: result[k] for k in ("requests", "seconds", "statuses")})
    assert result["requests"] >= 2000
    assert result["server_errors"] == 0, result["first_server_errors"]
    assert result["hangs"] == 0, result["first_hangs"]
    assert set(result["nodes_alive_after"].values()) == {200}
    assert result["integrity"] == {"insurer-east": "ok", "regulator": "ok", "audit_index_matches_chain": True}
