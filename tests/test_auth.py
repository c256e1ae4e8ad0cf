"""Request signatures: the fast EIP-712 digest equals the reference encoding; every tampering is refused."""
from __future__ import annotations

import os
import time

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message
from hypothesis import given, settings, strategies as st

from node.auth import AuthError, RequestVerifier, _typed, request_digest, sign_request

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
