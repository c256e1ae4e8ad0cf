"""The statistics peer client (node/stats/peer.py) against a real HTTP server on loopback.

What a requester makes of a peer's answer decides whether a job retries or fails: a 4xx refusal is final
(with the peer's reason), no answer or a 5xx may pass on retry, an answer too large or not JSON fails the job.
The server here checks each request's signature with the node's own verifier (node/access/auth.py).
"""
from __future__ import annotations

import http.server
import json
import threading
import time
from types import SimpleNamespace

import pytest
from eth_account import Account

from node.access.auth import AuthError, RequestVerifier
from node.stats.peer import PeerClient, PeerError, Peers, answer_limit

CHAIN_ID = 31337
AUDIENCE = "0x" + "11" * 20
PROBLEM = {"detail": {"reason": "no_grant", "message": "no grant from this member for STATISTICS"}}


class Peer(http.server.ThreadingHTTPServer):
    """A peer node: each path answers with a fixed (status, content type, body, delay) to a request whose signature
    verifies, and 401 with the verifier's reason to any other, as a node does."""

    daemon_threads = True
    block_on_close = False  # a handler still sleeping through a deadline test does not hold up the next test
    routes: dict[str, tuple[int, str, bytes, float]] = {}

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.verifier = RequestVerifier(CHAIN_ID, AUDIENCE)
        self.seen: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            verified = self.server.verifier.verify("POST", self.path, body, self.headers)
        except AuthError as exc:
            status, content_type, answer, delay = 401, "application/json", _json({"detail": {"reason": exc.reason,
                                                                                           "message": str(exc)}}), 0.0
        else:
            self.server.seen.append({"path": self.path, "signer": verified.signer, "body": body,
                                     "content_type": self.headers.get("content-type")})
            status, content_type, answer, delay = self.server.routes[self.path]
        time.sleep(delay)
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        try:
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def peer():
    server = Peer()
    server.routes = {}
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(peer: Peer, **kwargs) -> PeerClient:
    return PeerClient(peer.url, Account.create(), AUDIENCE, CHAIN_ID, **kwargs)


# ---------------------------------------------------------------------------------------------- error bodies


def _json(body) -> bytes:
    return json.dumps(body).encode()


# (status, content type, body) -> (reason, message fragment, definitive: the job fails instead of retrying)
ERROR_CASES = [
    (403, "application/json", _json(PROBLEM), "no_grant", "no grant from this member", True),
    (409, "application/json", _json({"detail": {"reason": "spec_mismatch", "message": "hash differs"}}), "spec_mismatch",
     "hash differs", True),
    (422, "application/json", _json({"detail": [{"loc": ["body"], "msg": "field required"}]}), "refused", "field required", True),
    (404, "text/html", b"<html><body>Not Found</body></html>", "refused", "<html><body>Not Found", True),
    (401, "application/json", _json({"detail": {"message": "stale signature"}}), "refused", "stale signature", True),
    (408, "application/json", _json({"detail": {"reason": "slow_body", "message": "body too slow"}}), "slow_body", "too slow", False),
    (425, "application/json", _json({"detail": {"reason": "too_early", "message": "try later"}}), "too_early", "later", False),
    (429, "application/json", _json({"detail": {"reason": "busy", "message": "rate limited"}}), "busy", "rate limited", False),
    (500, "text/plain", b"Internal Server Error", "refused", "Internal Server Error", False),
    (503, "application/json", _json({"detail": {"reason": "key_not_ready", "message": "no key yet"}}), "key_not_ready", "no key",
     False),
    (302, "text/plain", b"", "refused", "", False),
]


@pytest.mark.parametrize("status, content_type, body, reason, fragment, definitive", ERROR_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in ERROR_CASES])
def test_an_error_answer_becomes_the_peers_reason_and_says_whether_to_retry(peer, status, content_type, body, reason, fragment,
                                                                           definitive):
    peer.routes["/stats/contribute"] = (status, content_type, body, 0.0)
    with client_for(peer) as client, pytest.raises(PeerError) as info:
        client.post_json("/stats/contribute", {"chain_job_id": 1})
    assert (info.value.status, info.value.reason, info.value.definitive) == (status, reason, definitive)
    assert fragment in str(info.value)


def test_a_json_answer_comes_back_as_sent_and_the_request_is_signed_for_this_peer(peer):
    peer.routes["/stats/contribute"] = (200, "application/json", _json({"contribution": [1, 2], "commitment": "ab"}), 0.0)
    account = Account.create()
    with PeerClient(peer.url + "/", account, AUDIENCE, CHAIN_ID) as client:
        assert client.post_json("/stats/contribute", {"chain_job_id": 7}) == {"contribution": [1, 2], "commitment": "ab"}
    (seen,) = peer.seen
    assert seen["signer"] == account.address and json.loads(seen["body"]) == {"chain_job_id": 7}
    assert seen["content_type"] == "application/json"


def test_a_label_batch_goes_as_raw_bytes_covered_by_the_signature(peer):
    peer.routes["/stats/vertical/7/labels"] = (200, "application/json", _json({"received": 2}), 0.0)
    raw = bytes(range(256)) * 3
    with client_for(peer) as client:
        assert client.post_bytes("/stats/vertical/7/labels", raw) == {"received": 2}
    assert peer.seen[0]["body"] == raw and peer.seen[0]["content_type"] == "application/octet-stream"


def test_a_request_signed_for_another_node_is_refused_by_the_peer(peer):
    """The audience is the target's address: a request signed for one node does not verify at another."""
    peer.routes["/stats/contribute"] = (200, "application/json", b"{}", 0.0)
    with PeerClient(peer.url, Account.create(), "0x" + "22" * 20, CHAIN_ID) as client, pytest.raises(PeerError) as info:
        client.post_json("/stats/contribute", {})
    assert (info.value.status, info.value.definitive) == (401, True) and info.value.reason != "refused", info.value.reason
    assert peer.seen == []


@pytest.mark.parametrize("body", [b"not json", b"", b"{\"cut\": "])
def test_an_answer_that_is_not_json_fails_the_job(peer, body):
    peer.routes["/stats/fraud"] = (200, "application/json", body, 0.0)
    with client_for(peer) as client, pytest.raises(PeerError) as info:
        client.post_json("/stats/fraud", {})
    assert (info.value.reason, info.value.definitive) == ("malformed_answer", True)


# ---------------------------------------------------------------------------------------------- caps and deadlines


@pytest.mark.parametrize("size, limit, passes", [
    (1000, 1000, True),      # exactly at the message's limit
    (1001, 1000, False),     # one byte over
    (5000, None, True),      # the client's own limit (8 KiB below) applies when the message gives none
    (9000, None, False),
])
def test_an_answer_over_its_limit_is_cut_off_and_final(peer, size, limit, passes):
    answer = b'"' + b"x" * (size - 2) + b'"'
    peer.routes["/stats/vertical/start"] = (200, "application/json", answer, 0.0)
    with client_for(peer, max_bytes=8192) as client:
        if passes:
            assert client.post_json("/stats/vertical/start", {}, max_bytes=limit) == "x" * (size - 2)
            return
        with pytest.raises(PeerError) as info:
            client.post_json("/stats/vertical/start", {}, max_bytes=limit)
    assert (info.value.reason, info.value.definitive) == ("answer_too_large", True)
    assert str(limit or 8192) in str(info.value)


def test_a_peer_slower_than_the_deadline_is_a_retryable_failure(peer):
    peer.routes["/stats/contribute"] = (200, "application/json", b"{}", 2.0)
    started = time.monotonic()
    with client_for(peer, timeout=0.3) as client, pytest.raises(PeerError) as info:
        client.post_json("/stats/contribute", {})
    assert time.monotonic() - started < 1.8  # gave up at the deadline, not when the peer answered
    assert (info.value.status, info.value.reason, info.value.definitive) == (None, "unreachable", False)
    assert "Timeout" in str(info.value)


def test_a_peer_that_is_not_listening_is_a_retryable_failure():
    server = Peer()
    url = server.url
    server.server_close()  # the port is free again: nothing listens there
    with PeerClient(url, Account.create(), AUDIENCE, CHAIN_ID, timeout=2) as client, pytest.raises(PeerError) as info:
        client.post_json("/stats/contribute", {})
    assert (info.value.status, info.value.reason, info.value.definitive) == (None, "unreachable", False)


# ---------------------------------------------------------------------------------------------- registry and limits


def test_peers_take_endpoint_and_audience_from_the_registry():
    member = SimpleNamespace(endpoint="http://10.0.0.9:8700/", name="insurer-east")
    ledger = SimpleNamespace(member=lambda address: member, account=Account.create())
    peers = Peers(ledger, CHAIN_ID, answer_max_bytes=4096)
    with peers.client("0x" + "33" * 20, timeout=5) as client:
        assert str(client.http.base_url).rstrip("/") == "http://10.0.0.9:8700"
        assert (client.audience, client.chain_id, client.max_bytes) == ("0x" + "33" * 20, CHAIN_ID, 4096)
    assert peers.name("0x" + "33" * 20) == "insurer-east"


KEY_2048 = {"key_bits": 2048}
HEX_CIPHERTEXT = 2 * 512 + 16  # a 4096-bit ciphertext as hex, plus JSON framing


@pytest.mark.parametrize("message, public, own_rows, need", [
    ("fraud", {**KEY_2048, "persons": 100_000}, 0, 100_000 * 2 * 70),
    ("vertical/start", {**KEY_2048, "buckets": ["a", "b"], "pad_to": 3_000_000}, 0, 70 * 6_000_000),
    ("vertical/start", {**KEY_2048, "buckets": ["a"]}, 200_000, 70 * 2_000_000),
    ("vertical/start", {**KEY_2048, "buckets": ["a"]}, 0, 70 * 1_000_000),
])
def test_answer_limits_follow_the_job_size(message, public, own_rows, need):
    assert answer_limit(1, {"public_spec": public}, message, own_rows) == 2 * need + 65536


def test_answer_limit_never_goes_under_the_setting():
    assert answer_limit(10**9, {"public_spec": {**KEY_2048, "persons": 1}}, "fraud") == 10**9
