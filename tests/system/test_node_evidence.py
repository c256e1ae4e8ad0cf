"""Claim evidence through a real node process: the member submits, the chain anchors, an auditor verifies."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time

import pytest
from eth_account import Account
from nodes import ROOT, TEST_PASSPHRASE, start_node

from node.chain.deployment import GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.client import NodeClient
from node.keys import create_member_keys


@pytest.fixture(scope="module")
def evidence_node(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("evidence-node")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    keys = {n: create_member_keys(base / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ("insurer", "auditor")}
    deployer = Account.create()
    for a in [deployer, *(k.account for k in keys.values())]:
        gateway.fund(a.address)
    dep = deploy_consortium(gateway, deployer, [GenesisMember(keys["insurer"].address, "insurer", Role.INSURER),
                                                GenesisMember(keys["auditor"].address, "auditor", Role.AUDITOR)])
    dep_path = dep.save(base / "deployment.json")
    node = start_node(base / "home", "insurer", base / "insurer", anvil.url, dep_path, evidence_batch_age=0.3,
                      evidence_max_document_bytes=100_000)
    yield {"node": node, "keys": keys, "gateway": gateway, "deployment": dep_path, "rpc": anvil.url, "base": base}
    node.stop()


def client(env, who):
    return NodeClient(env["node"].url, env["keys"][who].account, env["keys"]["insurer"].address, env["gateway"].chain_id)


def wait_for_proofs(env, claim_id, count, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client(env, "insurer").request("GET", f"/evidence/proofs/{claim_id}")
        if r.status_code == 200 and sum(p["state"] == "ANCHORED" for p in r.json()["proofs"]) == count:
            return r.json()["proofs"]
        time.sleep(0.2)
    raise AssertionError(f"no proofs for {claim_id} within {timeout} s: {r.status_code} {r.text}")


def test_document_is_anchored_and_verified_by_an_auditor_from_the_chain_alone(evidence_node, tmp_path):
    env = evidence_node
    document = b"%PDF-1.7 invoice 2026-11-21 amount 1288.00 CNY"
    insurer = client(env, "insurer")
    r = insurer.request("POST", "/evidence/hashes", {"sha256": hashlib.sha256(document).hexdigest(),
                                                     "claim_id": "CLM-2026-0001", "doc_type": "invoice"})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["claim_id"] == "CLM-2026-0001" and receipt["leaf_index"] >= 0
    proofs = wait_for_proofs(env, "CLM-2026-0001", 1)
    auditor = client(env, "auditor")
    verdict = auditor.request("POST", "/evidence/verify", {"proof": proofs[0], "document_base64": base64.b64encode(document).decode()})
    assert verdict.status_code == 200 and verdict.json()["valid"] is True, verdict.text
    tampered = auditor.request("POST", "/evidence/verify", {"proof": proofs[0], "document_base64": base64.b64encode(document + b" ").decode()})
    assert tampered.status_code == 200 and tampered.json()["valid"] is False
    # The auditor's CLI needs only the document, the proof and an RPC URL (plus the deployment file).
    (tmp_path / "invoice.pdf").write_bytes(document)
    (tmp_path / "proof.json").write_text(json.dumps(proofs[0]))
    cli = subprocess.run([sys.executable, "-m", "node.cli", "evidence", "verify", str(tmp_path / "invoice.pdf"), "--proof",
                          str(tmp_path / "proof.json"), "--rpc", env["rpc"], "--deployment", str(env["deployment"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr


def test_evidence_intake_is_for_the_member_itself(evidence_node):
    env = evidence_node
    auditor = client(env, "auditor")
    r = auditor.request("POST", "/evidence/hashes", {"sha256": "00" * 32, "claim_id": "X", "doc_type": "invoice"})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "not_operator"
    assert auditor.request("GET", "/evidence/proofs/CLM-2026-0001").status_code == 403
    unsigned = auditor.request("POST", "/evidence/verify", {"proof": {}}, sign=False)
    assert unsigned.status_code == 401


def test_uploaded_document_over_the_limit_is_refused(evidence_node):
    env = evidence_node
    insurer = client(env, "insurer")
    small = insurer.http.post("/evidence/documents", params={"claim_id": "CLM-2", "doc_type": "loss_photo"},
                              content=b"x" * 200_000)
    assert small.status_code in (401, 413)  # unsigned and too big: refused either way, never a 500
    from node.access.auth import sign_request

    body = b"jpeg bytes" * 10
    path = "/evidence/documents?claim_id=CLM-2&doc_type=loss_photo"
    headers = sign_request(env["keys"]["insurer"].account, env["gateway"].chain_id, env["keys"]["insurer"].address, "POST", path, body)
    ok = insurer.http.post(path, content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    big = b"y" * 150_000
    headers = sign_request(env["keys"]["insurer"].account, env["gateway"].chain_id, env["keys"]["insurer"].address, "POST", path, big)
    refused = insurer.http.post(path, content=big, headers=headers)
    assert refused.status_code == 413 and refused.json()["detail"]["reason"] == "body_too_large"


def test_claim_lifecycle_through_the_node_with_express_flag(evidence_node):
    env = evidence_node
    insurer = client(env, "insurer")
    steps = [{"step": "reported"}, {"step": "materials-complete"},
             {"step": "assessed", "amount": 800.0, "express_threshold": 2000.0, "materials_complete": True, "liability_clear": True},
             {"step": "approved"}, {"step": "paid", "detail": {"payment_ref": "PAY-1"}}]
    for body in steps:
        r = insurer.request("POST", "/evidence/claims/CLM-9/steps", body)
        assert r.status_code == 200, r.text
    out_of_order = insurer.request("POST", "/evidence/claims/CLM-9/steps", {"step": "paid"})
    assert out_of_order.status_code == 409 and out_of_order.json()["detail"]["reason"] == "InvalidClaimStep"
    unknown = insurer.request("POST", "/evidence/claims/CLM-9/steps", {"step": "teleported"})
    assert unknown.status_code == 422
    history = insurer.request("GET", "/evidence/claims/CLM-9/history").json()["steps"]
    assert [s["step"] for s in history] == ["REPORTED", "MATERIALS_COMPLETE", "ASSESSED", "APPROVED", "PAID"]
    assert [s["express"] for s in history] == [False, False, True, False, False]
    assert {s["actor_name"] for s in history} == {"insurer"}
    assert client(env, "auditor").request("POST", "/evidence/claims/CLM-9/steps", {"step": "reported"}).status_code == 403
