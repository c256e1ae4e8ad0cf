"""Request signatures: the fast EIP-712 digest equals the reference encoding; every tampering is refused."""
from __future__ import annotations

import os
import time

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message
from hypothesis import given, settings
from hypothesis import strategies as st

from node.access.auth import AuthError, RequestVerifier, _typed, is_low_s, request_digest, sign_digest, sign_request

SIGNER = Account.create()
NODE = Account.create().address


@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "delete"]), path=st.text(min_size=1, max_size=40),
       body=st.binary(max_size=64), ts=st.integers(0, 2**63), chain=st.integers(1, 2**40))
def test_fast_digest_equals_reference_eip712_encoding(method, path, body, ts, chain):
    import hashlib

    nonce = os.urandom(32)
    body_hash = hashlib.sha256(body).digest()
    reference = _hash_eip191_message(_typed(chain, method, path, body_hash, ts, nonce, NODE))
    assert request_digest(chain, method, path, body_hash, ts, nonce, NODE) == reference


@settings(max_examples=60, deadline=None)
@given(digest=st.binary(min_size=32, max_size=32), key=st.integers(1, 2**255))
def test_fast_signing_equals_eth_accounts_signature(digest, key):
    account = Account.from_key(key.to_bytes(32, "big"))
    signature = sign_digest(account, digest)
    assert signature == bytes(account.unsafe_sign_hash(digest).signature) and is_low_s(signature)


def verifier(window: int = 120) -> RequestVerifier:
    v = RequestVerifier(31337, NODE, window)
    v.started_at -= 5  # allow requests signed a moment before this test's verifier existed
    return v


def test_valid_request_verifies_once_and_replay_is_refused():
    v = verifier()
    headers = sign_request(SIGNER, 31337, NODE, "POST", "/data/query", b"{}")
    assert v.verify("POST", "/data/query", b"{}", headers).signer == SIGNER.address
    with pytest.raises(AuthError) as e:
        v.verify("POST", "/data/query", b"{}", headers)
    assert e.value.reason == "replayed"


@pytest.mark.parametrize("change", ["body", "path", "method", "audience", "chain", "signer", "signature"])
def test_any_tampering_is_refused(change):
    v = verifier()
    headers = sign_request(SIGNER, 31337, NODE, "POST", "/data/query", b'{"a":1}')
    method, path, body = "POST", "/data/query", b'{"a":1}'
    if change == "body":
        body = b'{"a":2}'
    elif change == "path":
        path = "/data/query?x=1"
    elif change == "method":
        method = "PUT"
    elif change == "audience":
        headers = sign_request(SIGNER, 31337, Account.create().address, "POST", "/data/query", body)
    elif change == "chain":
        headers = sign_request(SIGNER, 1, NODE, "POST", "/data/query", body)
    elif change == "signer":
        headers["x-consortium-signer"] = Account.create().address
    elif change == "signature":
        sig = bytearray(bytes.fromhex(headers["x-consortium-signature"].removeprefix("0x")))
        sig[10] ^= 1
        headers["x-consortium-signature"] = sig.hex()
    with pytest.raises(AuthError) as e:
        v.verify(method, path, body, headers)
    assert e.value.reason == "bad_signature"


def test_stale_and_pre_start_timestamps_are_refused():
    v = verifier(window=60)
    old = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(time.time()) - 61)
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", old)
    assert e.value.reason == "stale_timestamp"
    # Signed before the node (re)started: it might have been seen by the previous process.
    fresh = RequestVerifier(31337, NODE, 60)
    before = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=fresh.started_at - 1)
    with pytest.raises(AuthError) as e:
        fresh.verify("GET", "/x", b"", before)
    assert e.value.reason == "stale_timestamp"


@pytest.mark.parametrize("headers, reason", [
    ({}, "unsigned"),
    ({"x-consortium-signer": "0x12", "x-consortium-timestamp": "1", "x-consortium-nonce": "00", "x-consortium-signature": "00"}, "malformed_auth"),
    ({"x-consortium-signer": NODE, "x-consortium-timestamp": "soon", "x-consortium-nonce": "00" * 32, "x-consortium-signature": "00" * 65}, "malformed_auth"),
    ({"x-consortium-signer": NODE, "x-consortium-timestamp": "1", "x-consortium-nonce": "00" * 31, "x-consortium-signature": "00" * 65}, "malformed_auth"),
])
def test_malformed_headers_are_refused_with_a_reason(headers, reason):
    with pytest.raises(AuthError) as e:
        verifier().verify("GET", "/x", b"", headers)
    assert e.value.reason == reason


def _high_s(signature_hex: str) -> str:
    """The same signature's twin (r, n - s, flipped v): valid ECDSA, refused under EIP-2."""
    from node.access.auth import SECP256K1_N

    sig = bytes.fromhex(signature_hex.removeprefix("0x"))
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64]
    return (sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v if v >= 27 else v ^ 1])).hex()


def test_high_s_twin_of_a_valid_signature_is_refused():
    from node.access.auth import recover_signer

    v = verifier()
    headers = sign_request(SIGNER, 31337, NODE, "POST", "/data/query", b"{}")
    twin = {**headers, "x-consortium-signature": _high_s(headers["x-consortium-signature"])}
    # The twin does recover the signer (that is the malleability), so only the low-s rule stops it.
    digest = request_digest(31337, "POST", "/data/query", __import__("hashlib").sha256(b"{}").digest(),
                            int(headers["x-consortium-timestamp"]), bytes.fromhex(headers["x-consortium-nonce"]), NODE)
    assert recover_signer(digest, bytes.fromhex(twin["x-consortium-signature"])) == SIGNER.address
    with pytest.raises(AuthError) as e:
        v.verify("POST", "/data/query", b"{}", twin)
    assert e.value.reason == "high_s_signature"
    assert v.verify("POST", "/data/query", b"{}", headers).signer == SIGNER.address


@pytest.mark.parametrize("r, s", [(0, 1), (1, 0), (2**256 - 1, 1), (1, 2**255)])
def test_out_of_range_r_or_s_is_refused(r, s):
    headers = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"")
    headers["x-consortium-signature"] = (r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b").hex()
    with pytest.raises(AuthError) as e:
        verifier().verify("GET", "/x", b"", headers)
    assert e.value.reason == "high_s_signature"


def test_time_window_is_the_setting():
    from node.runtime.settings import NodeSettings

    assert NodeSettings.model_fields["auth_window_seconds"].default == 120
    v = verifier(window=30)
    late = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(time.time()) - 40)
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", late)
    assert e.value.reason == "stale_timestamp"
    wide = verifier(window=60)
    wide.started_at -= 60  # the late request was signed before this verifier existed; not what is tested here
    assert wide.verify("GET", "/x", b"", late).signer == SIGNER.address


@pytest.mark.parametrize("path, params", [
    ("/evidence/receipts/CLM 2026 #7", None), ("/evidence/receipts/理赔-0042", None),
    ("/evidence/receipts/100%25-ok", None), ("/evidence/proofs/a%b", None), ("/audit/logs", {"since": "2026-01-01 00:00", "x": "ä&b=c"}),
])
def test_client_signs_the_target_exactly_as_the_node_receives_it(path, params):
    """The client signs the percent-encoded bytes httpx sends; the node verifies the raw ASGI target."""
    import httpx

    from node.api.deps import signed_target as node_target
    from node.client import NodeClient, signed_target

    seen = {}

    def app(request: httpx.Request) -> httpx.Response:
        raw_path, _, query = request.url.raw_path.partition(b"?")
        seen["target"] = node_target(type("R", (), {"scope": {"raw_path": raw_path, "query_string": query, "path": ""}})())
        seen["headers"] = dict(request.headers)
        return httpx.Response(200)

    client = NodeClient("http://node.test", SIGNER, NODE, 31337)
    client.http = httpx.Client(base_url="http://node.test", transport=httpx.MockTransport(app))
    client.request("GET", path, params=params)
    assert seen["target"].isascii()
    assert verifier().verify("GET", seen["target"], b"", seen["headers"]).signer == SIGNER.address
    assert signed_target(httpx.URL("http://h/prefix"), httpx.URL("http://h/prefix/evidence/x?a=1")) == "/evidence/x?a=1"


class _Clock:
    """Stands in for node.access.auth's time module: the test moves the clock instead of sleeping."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


def test_replay_memory_is_bounded_and_full_memory_refuses_instead_of_forgetting(monkeypatch):
    import node.access.auth

    clock = _Clock(time.time())
    monkeypatch.setattr(node.access.auth, "time", clock)
    v = RequestVerifier(31337, NODE, 60, max_nonces=3)
    v.started_at -= 5
    sent = [sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(clock.now)) for _ in range(4)]
    for headers in sent[:3]:
        v.verify("GET", "/x", b"", headers)
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", sent[3])
    assert e.value.reason == "replay_cache_full" and e.value.status == 503
    assert v.nonces_held == 3
    # Still inside the window: every kept nonce is still refused as a replay (none was forgotten to make room).
    clock.now += 60
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", sent[0])
    assert e.value.reason == "replayed"
    # Once their timestamps leave the window the nonces are dropped (a replay is stale now) and room is made.
    clock.now += 1
    fresh = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(clock.now))
    assert v.verify("GET", "/x", b"", fresh).signer == SIGNER.address
    assert v.nonces_held == 1
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", sent[1])
    assert e.value.reason == "stale_timestamp"


def test_replay_memory_holds_each_nonce_for_its_timestamp_window_only(monkeypatch):
    """A request signed ahead of the node's clock stays remembered until its own timestamp leaves the window."""
    import node.access.auth

    clock = _Clock(time.time())
    monkeypatch.setattr(node.access.auth, "time", clock)
    v = RequestVerifier(31337, NODE, 60)
    v.started_at -= 5
    ahead = sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(clock.now) + 50)
    v.verify("GET", "/x", b"", ahead)
    for _ in range(100):
        v.verify("GET", "/x", b"", sign_request(SIGNER, 31337, NODE, "GET", "/x", b"", timestamp=int(clock.now)))
    clock.now += 100  # the 100 now-stamped nonces expired; the one signed 50 s ahead has 10 s left
    with pytest.raises(AuthError) as e:
        v.verify("GET", "/x", b"", ahead)
    assert e.value.reason == "replayed"
    assert v.nonces_held == 1
