"""The README's request-signing scheme is enough for a client in another language.

examples/js-client/consortium-client.mjs (JavaScript, Node >= 20, @noble/curves + @noble/hashes) is
written from the README alone. It signs a GET to a real node process: the node answers it, a request
whose sent target differs from the signed one gets 401 bad_signature, and one from a key that is no
member gets 403. Its digest also equals node/access/auth.py's for awkward paths (percent-encoding, a query).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest
from eth_account import Account
from nodes import ROOT, deploy_members, start_node

from node.access.auth import request_digest
from node.chain.deployment import Role
from node.chain.gateway import ChainGateway

CLIENT = ROOT / "examples" / "js-client" / "consortium-client.mjs"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def member_node(anvil, artifacts, tmp_path_factory):
    if NODE is None or not (ROOT / "node_modules" / "@noble" / "curves").exists():
        pytest.fail("node and npm packages are needed: run scripts/setup.sh (npm ci installs @noble/curves)")
    base = tmp_path_factory.mktemp("js-client")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    roles = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER}
    keys, deployment, dep_path = deploy_members(gateway, base, roles)
    node = start_node(base / "insurer_a", "insurer_a", base / "keys" / "insurer_a", anvil.url, dep_path)
    try:
        yield {"node": node, "keys": keys, "chain_id": gateway.chain_id}
    finally:
        node.stop()


def run_client(member_node, key_hex: str, *extra: str) -> tuple[int, dict]:
    node = member_node["node"]
    env = {**os.environ, "CONSORTIUM_PRIVATE_KEY": key_hex}
    out = subprocess.run([NODE, str(CLIENT), "--url", node.url, "--audience", member_node["keys"]["insurer_a"].address,
                          "--chain-id", str(member_node["chain_id"]), *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_js_client_signed_get_is_answered_and_a_tampered_one_is_401(member_node):
    key = "0x" + bytes(member_node["keys"]["insurer_b"].account.key).hex()
    code, answer = run_client(member_node, key, "--path", "/governance/members")
    assert code == 0 and answer["status"] == 200, answer
    assert {m["name"] for m in answer["body"]} == {"insurer_a", "insurer_b"}
    code, answer = run_client(member_node, key, "--path", "/governance/members", "--tamper-path", "/grants")
    assert code == 1 and answer["status"] == 401 and answer["body"]["detail"]["reason"] == "bad_signature", answer
    # correctly signed, but by an account that is not a member: authenticated, then refused
    code, answer = run_client(member_node, "0x" + bytes(Account.create().key).hex(), "--path", "/governance/members")
    assert code == 1 and answer["status"] == 403, answer


@pytest.mark.parametrize("method,path,body", [("get", "/members", b""),
                                              ("POST", "/evidence/proofs/CLM%20%C3%A9?limit=5&x=%2F", b'{"a": 1}')])
def test_js_digest_equals_the_reference_digest(method, path, body):
    script = ("import { requestDigest } from %s;\n"
              "import { bytesToHex } from '@noble/hashes/utils.js';\n"
              "console.log(bytesToHex(requestDigest({chainId: 31337, method: %s, path: %s, body: new TextEncoder().encode(%s), "
              "timestamp: 1700000000, nonce: new Uint8Array(32).fill(7), audience: '0x' + '11'.repeat(20)})));"
              % (json.dumps(CLIENT.as_uri()), json.dumps(method), json.dumps(path), json.dumps(body.decode())))
    out = subprocess.run([NODE, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    expected = request_digest(31337, method, path, hashlib.sha256(body).digest(), 1700000000, bytes([7]) * 32, "0x" + "11" * 20)
    assert out.stdout.strip() == expected.hex()
