"""Slow clients are cut off: a real node process, real sockets, bounds taken from the node's settings.

Slowloris (headers trickled a byte at a time) and slow bodies (bytes trickled after the headers) each
held a connection for ever before; now the header deadline closes the first and the body deadline
answers 408 and closes the second, while a normal client on the same node is served meanwhile.
"""
from __future__ import annotations

import socket
import sys
import time

import httpx
import pytest
from nodes import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from benches.fuzz import Network  # noqa: E402

HEADER_TIMEOUT = 2.0
BODY_GRACE = 2.0
MIN_RATE = 1000  # bytes per second after the grace
MAX_BODY = 100_000


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = Network.start(tmp_path_factory.mktemp("limits"), node_names=("insurer-east",),
                            http_header_timeout_seconds=HEADER_TIMEOUT, http_body_timeout_seconds=BODY_GRACE,
                            http_body_min_bytes_per_second=MIN_RATE, http_keep_alive_seconds=2,
                            max_body_bytes=MAX_BODY)
    yield network
    network.stop()


def _connect(net) -> socket.socket:
    host, port = net.nodes["insurer-east"].url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _trickle_until_closed(sock: socket.socket, payload: bytes, pause: float, limit: float) -> tuple[float, bytes]:
    """Send ``payload`` a byte per ``pause`` until the server closes; returns (seconds, what it answered)."""
    t0 = time.monotonic()
    answer = b""
    sock.settimeout(pause)
    for i in range(len(payload)):
        if time.monotonic() - t0 > limit:
            break
        try:
            sock.sendall(payload[i:i + 1])
            chunk = sock.recv(4096)
            if not chunk:
                return time.monotonic() - t0, answer
            answer += chunk
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0, answer
    return time.monotonic() - t0, answer


def test_slowloris_headers_are_cut_off_at_the_header_deadline(net):
    sock = _connect(net)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"
    took, _ = _trickle_until_closed(sock, request, 0.2, limit=40)
    sock.close()
    assert took < HEADER_TIMEOUT + 8, f"connection still open after {took:.1f} s"


def test_an_idle_connection_that_never_sends_is_closed(net):
    sock = _connect(net)
    sock.settimeout(HEADER_TIMEOUT + 10)
    t0 = time.monotonic()
    assert sock.recv(1) == b""  # the server closed it
    assert time.monotonic() - t0 < HEADER_TIMEOUT + 8
    sock.close()


def test_slow_body_gets_408_and_the_connection_is_closed(net):
    sock = _connect(net)
    body = b'{"items": [' + b" " * 5000 + b"]}"
    head = (b"POST /evidence/hashes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    sock.sendall(head)
    took, answer = _trickle_until_closed(sock, body, 0.2, limit=40)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer
    assert took < BODY_GRACE + 8


def test_many_slow_clients_do_not_stop_normal_ones_and_all_are_closed(net):
    url = net.nodes["insurer-east"].url
    socks = [_connect(net) for _ in range(60)]
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert httpx.get(url + "/health", timeout=10).status_code == 200  # served meanwhile
    deadline = time.monotonic() + HEADER_TIMEOUT + 15
    open_left = list(socks)
    while open_left and time.monotonic() < deadline:
        for s in list(open_left):
            s.settimeout(0.05)
            try:
                if s.recv(1) == b"":
                    open_left.remove(s)
            except socket.timeout:
                pass
            except OSError:
                open_left.remove(s)
    for s in socks:
        s.close()
    assert not open_left, f"{len(open_left)} of 60 slow connections still open"


def test_a_large_body_at_a_normal_speed_is_served(net):
    """The body deadline grows with what arrived: a steady upload slower than the grace period passes."""
    client = net.client("operator", "insurer-east")
    body = b"%PDF " + b"x" * 12000

    def chunks():
        for i in range(0, len(body), 3000):
            time.sleep(0.6)  # about 5 KB/s: above MIN_RATE, and the whole upload takes longer than the grace
            yield body[i:i + 3000]

    # the signature covers the body's hash, so sign the whole body and stream it in pieces
    http = httpx.Client(base_url=net.nodes["insurer-east"].url, timeout=30)
    from node.access.auth import sign_request

    headers = sign_request(client.account, client.chain_id, client.audience, "POST",
                           "/evidence/documents?claim_id=CLM-slow&doc_type=invoice", body)
    r = http.post("/evidence/documents?claim_id=CLM-slow&doc_type=invoice", content=chunks(),
                  headers={**headers, "content-length": str(len(body))})
    assert r.status_code == 200, r.text
    http.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_headers_over_the_size_bound_get_400_and_the_connection_is_closed(net, chunked):
    """``http_max_header_bytes`` (16 KiB default) holds with the C parser too, whether the headers come in one
    read or in pieces that never reach the end of the header section."""
    sock = _connect(net)
    sock.settimeout(10)
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    if chunked:
        for i in range(0, len(big) - 4, 4096):  # stop before the blank line: the headers never end
            sock.sendall(big[i:i + 4096])
            time.sleep(0.05)
    else:
        sock.sendall(big)
    answer = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert httpx.get(net.nodes["insurer-east"].url + "/health", timeout=10).status_code == 200


def test_a_body_answered_before_it_was_read_does_not_spill_into_the_next_request(net):
    """An upload declaring more than the bound is refused (413) as soon as its headers arrive; the body that follows is the refused
    request's, never the next request's headers: the next request on the same connection is served. (The rest
    of a 200 KB body was once counted against the next request's 16 KiB header bound: 400, flaky in the suite.)"""
    sock = _connect(net)
    sock.settimeout(10)
    body = b"x" * (2 * MAX_BODY)
    sock.sendall(b"POST /data/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    first = sock.recv(4096)  # the answer arrives before a byte of the body was sent
    assert first.startswith(b"HTTP/1.1 413"), first[:200]
    try:
        sock.sendall(body)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        sock.close()  # the server may close instead of reading the rest: then nothing was misread
        return
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    sock.close()
    # either the next request is served, or the connection was closed without a misparsed answer
    assert answer == b"" or answer.startswith(b"HTTP/1.1 200"), answer[:200]
