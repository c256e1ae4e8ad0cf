"""The hot path's JSON-RPC client against real sockets: framings a chain node may use, and its failures."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from node.chain.rpc_client import KeepAliveRpc, RpcTransportError


class Server:
    """A one-thread HTTP server on a loopback port answering each request with ``respond(n, request)``."""

    def __init__(self, respond):
        self.respond = respond
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while True:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    body, buf = rest[:length], rest[length:]
                    self.requests += 1
                    answer = self.respond(self.requests, json.loads(body))
                    if answer is None:  # close without answering
                        break
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread is blocked in
        except OSError:
            pass
        self.sock.close()


def framed(payload: dict, *, chunked: bool = False, close: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + ("Connection: close\r\n" if close else "")
    if chunked:
        pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
        return (headers + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(
            f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
    return (headers + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_answers_are_read_whole_and_the_connection_is_kept(chunked):
    server = Server(lambda n, req: framed({"jsonrpc": "2.0", "id": req["id"], "result": [req["method"], n, "x" * 3000]},
                                          chunked=chunked))
    try:
        rpc = KeepAliveRpc("127.0.0.1", server.port)
        for n in range(1, 6):
            assert rpc.request("eth_blockNumber", [])["result"] == ["eth_blockNumber", n, "x" * 3000]
        assert server.connections == 1  # kept alive across the five calls
    finally:
        server.close()


def test_a_server_that_closes_gets_a_new_connection_and_an_error_answer_is_returned():
    server = Server(lambda n, req: framed({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32000, "message": "nonce too low"}},
                                          close=True))
    try:
        rpc = KeepAliveRpc("127.0.0.1", server.port)
        assert rpc.request("eth_sendRawTransaction", ["0x00"])["error"]["message"] == "nonce too low"
        assert rpc.request("eth_sendRawTransaction", ["0x00"])["error"]["message"] == "nonce too low"
        assert server.connections == 2
    finally:
        server.close()


def test_no_answer_and_no_server_are_transport_errors():
    server = Server(lambda n, req: None)  # reads the request, closes without a word
    try:
        with pytest.raises(RpcTransportError):
            KeepAliveRpc("127.0.0.1", server.port).request("eth_chainId", [])
    finally:
        server.close()
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused
    try:
        with pytest.raises(RpcTransportError, match="cannot connect"):
            KeepAliveRpc("127.0.0.1", unused.getsockname()[1]).request("eth_chainId", [])
    finally:
        unused.close()


def test_not_json_rpc_is_refused():
    server = Server(lambda n, req: b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nbad gateway")
    try:
        with pytest.raises(RpcTransportError, match="HTTP 502"):
            KeepAliveRpc("127.0.0.1", server.port).request("eth_chainId", [])
    finally:
        server.close()


def test_a_batch_is_one_exchange_and_its_answers_come_back_in_the_order_asked():
    def respond(n, req):
        if not isinstance(req, list):
            return framed({"jsonrpc": "2.0", "id": req["id"], "result": "single"})
        answers = [{"jsonrpc": "2.0", "id": r["id"], "result": [r["method"], r["params"]]} for r in req]
        return framed(list(reversed(answers)))  # JSON-RPC lets a server answer a batch in any order

    server = Server(respond)
    try:
        rpc = KeepAliveRpc("127.0.0.1", server.port)
        calls = [("eth_getTransactionReceipt", [f"0x{i:02x}"]) for i in range(5)] + [("eth_blockNumber", [])]
        assert [a["result"] for a in rpc.batch(calls)] == [[m, p] for m, p in calls]
        assert rpc.request("eth_chainId", [])["result"] == "single"
        assert rpc.batch([]) == [] and server.requests == 2  # one exchange for the batch, none for an empty one
    finally:
        server.close()


@pytest.mark.parametrize("answer, reason", [
    ({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}, "refused a batch"),
    ([{"jsonrpc": "2.0", "id": 0, "result": "0x1"}], "lacks 1 of 2 answers"),
    ("0x1", "not a JSON-RPC batch answer"),
], ids=["refused", "an answer missing", "not a list"])
def test_a_batch_answered_wrongly_is_a_transport_error(answer, reason):
    server = Server(lambda n, req: framed(answer))
    try:
        with pytest.raises(RpcTransportError, match=reason):
            KeepAliveRpc("127.0.0.1", server.port).batch([("eth_blockNumber", []), ("eth_chainId", [])])
    finally:
        server.close()
