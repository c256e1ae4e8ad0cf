"""Evidence HTTP endpoints (never a 500 on bad input) and the claim lifecycle commands."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from evidence_testing import evidence_app
from fastapi.testclient import TestClient

from node.chain.deployment import ClaimStep
from node.cli.main import main as cli_main
from node.evidence.claims import claim_history, record_claim_step
from node.evidence.service import EvidenceService, EvidenceSettings
from node.evidence.store import create_store_engine


@pytest.fixture
def client(tmp_path, consortium):
    service = EvidenceService(create_store_engine(tmp_path / "e.db"), consortium["insurer_a"],
                              EvidenceSettings(max_document_bytes=1000))
    with TestClient(evidence_app(service, consortium["insurer_a"].address)) as c:
        yield c, service


def test_intake_receipts_proofs_and_verify_over_http(client):
    c, service = client
    one = c.post("/evidence/hashes", json={"sha256": hashlib.sha256(b"a").hexdigest(), "claim_id": "CLM-1",
                                           "doc_type": "invoice"})
    assert one.status_code == 200 and one.json()["leaf_index"] == 0
    doc = c.post("/evidence/documents", params={"claim_id": "CLM-1", "doc_type": "loss-photo"}, content=b"jpeg bytes")
    assert doc.status_code == 200 and doc.json()["doc_sha256"] == hashlib.sha256(b"jpeg bytes").hexdigest()
    many = c.post("/evidence/hashes", json={"items": [[hashlib.sha256(b"%d" % i).hexdigest(), "CLM-2", "identity-document"]
                                                      for i in range(1500)]})
    assert many.status_code == 200 and many.json()["accepted"] == 1500 and many.json()["spans"][0]["first_leaf_index"] == 2
    assert [r["state"] for r in c.get("/evidence/receipts/CLM-1").json()["receipts"]] == ["OPEN", "OPEN"]
    service.close_open_batch()
    service.run_once()
    proofs = c.get("/evidence/proofs/CLM-1").json()["proofs"]
    assert all(p["state"] == "ANCHORED" for p in proofs)
    ok = c.post("/evidence/verify", json={"proof": proofs[1], "document_base64": base64.b64encode(b"jpeg bytes").decode()})
    assert ok.json()["valid"] is True and ok.json()["submitter_name"] == "insurer_a"
    bad = c.post("/evidence/verify", json={"proof": proofs[1], "document_base64": base64.b64encode(b"jpeg byteZ").decode()})
    assert bad.status_code == 200 and bad.json() == {**bad.json(), "valid": False, "reason": "tampered_document"}


@pytest.mark.parametrize("method, path, kwargs, status, reason", [
    ("post", "/evidence/hashes", {"content": b"{nope"}, 400, "malformed_json"),
    ("post", "/evidence/hashes", {"json": [1, 2]}, 422, "invalid_input"),
    ("post", "/evidence/hashes", {"json": {"items": "x"}}, 422, "invalid_input"),
    ("post", "/evidence/hashes", {"json": {"items": [[1, 2]]}}, 422, "invalid_input"),
    ("post", "/evidence/hashes", {"json": {"sha256": "00", "claim_id": "C", "doc_type": "invoice"}}, 422, "invalid_hash"),
    ("post", "/evidence/hashes", {"json": {"sha256": "00" * 32, "claim_id": {"a": 1}, "doc_type": "invoice"}}, 422, "invalid_input"),
    ("post", "/evidence/hashes", {"json": {"sha256": "00" * 32, "claim_id": "C", "doc_type": [1]}}, 422, "invalid_input"),
    ("post", "/evidence/hashes", {"json": {"items": []}}, 422, "empty_request"),
    ("post", "/evidence/documents?claim_id=C&doc_type=invoice", {"content": b"x" * 1001}, 413, "document_too_large"),
    ("post", "/evidence/documents?claim_id=C&doc_type=selfie", {"content": b"x"}, 422, "invalid_doc_type"),
    ("post", "/evidence/documents?claim_id=C&doc_type=invoice", {"content": b""}, 422, "empty_document"),
    ("get", "/evidence/proofs/CLM-unknown", {}, 404, "unknown_claim"),
    ("get", "/evidence/receipts/CLM-unknown", {}, 404, "unknown_claim"),
    ("post", "/evidence/verify", {"json": {"proof": {}}}, 422, "invalid_input"),
    ("post", "/evidence/verify", {"json": {"proof": {}, "document_base64": "!!"}}, 422, "invalid_input"),
])
def test_bad_requests_get_a_4xx_with_a_reason(client, method, path, kwargs, status, reason):
    c, service = client
    r = getattr(c, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["detail"]["reason"] == reason
    assert service.store.counts()["leaves"] == 0


def test_claim_steps_are_recorded_with_actor_and_express_flag(consortium, tmp_path, capsys):
    ledger = consortium["insurer_a"]
    record_claim_step(ledger, "CLM-9", ClaimStep.REPORTED)
    record_claim_step(ledger, "CLM-9", ClaimStep.MATERIALS_COMPLETE)
    assessed = record_claim_step(ledger, "CLM-9", ClaimStep.ASSESSED, amount=800, express_threshold=1000,
                                 materials_complete=True, liability_clear=True)
    assert assessed["express"] is True
    record_claim_step(ledger, "CLM-9", ClaimStep.APPROVED)
    history = claim_history(consortium.gateway, "CLM-9")
    assert [h.step for h in history] == ["REPORTED", "MATERIALS_COMPLETE", "ASSESSED", "APPROVED"]
    assert [h.express for h in history] == [False, False, True, False]
    assert {h.actor_name for h in history} == {"insurer_a"} and all(h.block_time > 0 for h in history)
    deployment = consortium.deployment.save(tmp_path / "deployment.json")
    args = ["--rpc", consortium.gateway.rpc_url, "--deployment", str(deployment)]
    assert cli_main(["claim", "history", "CLM-9", *args, "--json"]) == 0
    assert [h["step"] for h in json.loads(capsys.readouterr().out)][-1] == "APPROVED"
    assert cli_main(["claim", "history", "CLM-9", *args]) == 0
    assert "insurer_a" in capsys.readouterr().out
    assert cli_main(["claim", "history", "CLM-none", *args]) == 1
    assert "no steps recorded" in capsys.readouterr().err
