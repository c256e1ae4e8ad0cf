"""JSON-RPC over plain HTTP/1.1 keep-alive sockets: the hot path's calls to the member's own chain node.

Every authorized request asks the chain for its head (node/access/authz_cache.py) and the access log sends
and settles batches. Through urllib3 one such call cost about 230 us of CPU in this process; written
here on a kept-alive socket it costs about 12 us (measured against anvil on this machine) -- the
request is one prebuilt byte string and the answer one read in the common case.

Only what JSON-RPC servers send is understood: a status line, headers, and a body framed by
Content-Length or chunked transfer encoding. HTTPS URLs use urllib3 (see ChainGateway).
"""
from __future__ import annotations

import json
import socket
import threading
from itertools import count

_MAX_HEADER = 64 * 1024
_MAX_BODY = 256 * 1024 * 1024  # eth_getLogs over a busy range can be large; anything beyond is not a chain node


class RpcTransportError(Exception):
    """The chain node could not be reached, or answered with something that is not HTTP JSON-RPC."""


class _Connection:
    def __init__(self, host: str, port: int, timeout: float):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.used = False  # a kept-alive socket the server may have closed meanwhile (one retry then)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionResetError("the chain node closed the connection")
        self.buffer += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            if len(self.buffer) > _MAX_HEADER:
                raise RpcTransportError("the chain node's answer has an oversized header line")
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; returns (HTTP status, body, whether the server keeps the connection open)."""
        self.sock.sendall(request)
        status_line = self._line()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise RpcTransportError(f"not an HTTP answer: {status_line[:60]!r}")
        status = int(parts[1])
        length, chunked, keep = None, False, parts[0] == b"HTTP/1.1"
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                keep = value != b"close"
        if chunked:
            body = bytearray()
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers, then the blank line
                        pass
                    break
                if len(body) + size > _MAX_BODY:
                    raise RpcTransportError("the chain node's answer is too large")
                body += self._exactly(size)
                self._line()
            return status, bytes(body), keep
        if length is None:  # framed by closing the connection
            while True:
                try:
                    self._fill()
                except ConnectionResetError:
                    break
                if len(self.buffer) > _MAX_BODY:
                    raise RpcTransportError("the chain node's answer is too large")
            body = bytes(self.buffer)
            self.buffer.clear()
            return status, body, False
        if length > _MAX_BODY:
            raise RpcTransportError("the chain node's answer is too large")
        return status, self._exactly(length), keep


class KeepAliveRpc:
    """Thread-safe JSON-RPC client: a small stack of kept-alive connections, one per concurrent caller."""

    def __init__(self, host: str, port: int, path: str = "/", *, timeout: float = 10.0, max_idle: int = 8):
        self.host, self.port, self.path, self.timeout, self.max_idle = host, port, path or "/", timeout, max_idle
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._ids = count(1)
        self._head = (f"POST {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                      "Content-Length: ").encode()

    def request(self, method: str, params: list) -> dict:
        """The decoded JSON-RPC answer (``result`` or ``error``); RpcTransportError when no answer came."""
        decoded = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        if not isinstance(decoded, dict):
            raise RpcTransportError("not a single JSON-RPC answer")
        return decoded

    def batch(self, calls: list[tuple[str, list]]) -> list[dict]:
        """Several calls in one JSON-RPC batch (one round trip); the answers in the order of ``calls``."""
        if not calls:
            return []
        ids = range(len(calls))  # an answer is matched within its own exchange: ids need only differ in the batch
        decoded = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)])
        if isinstance(decoded, dict):  # a server that refuses batches answers with one error object
            raise RpcTransportError(f"the chain node refused a batch: {decoded.get('error', decoded)}")
        if not isinstance(decoded, list):
            raise RpcTransportError("not a JSON-RPC batch answer")
        by_id = {a.get("id"): a for a in decoded if isinstance(a, dict)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RpcTransportError(f"the chain node's batch answer lacks {len(missing)} of {len(calls)} answers")
        return [by_id[i] for i in ids]

    def _post(self, payload: dict | list) -> dict | list:
        body = json.dumps(payload, separators=(",", ":")).encode()
        request = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        for attempt in (0, 1):
            conn = self._acquire()
            try:
                status, answer, keep = conn.exchange(request)
            except (OSError, ValueError, RpcTransportError) as exc:
                conn.close()
                # A kept-alive connection the server closed while idle fails on first use: retry once on a fresh
                # one. JSON-RPC calls are safe to repeat (a re-sent raw transaction is the same transaction).
                if conn.used and attempt == 0 and isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
                    continue
                raise RpcTransportError(f"{type(exc).__name__}: {exc}") from None
            conn.used = True
            if keep:
                self._release(conn)
            else:
                conn.close()
            try:
                return json.loads(answer)
            except ValueError:
                raise RpcTransportError(f"HTTP {status} without a JSON-RPC answer") from None
        raise RpcTransportError("unreachable")  # pragma: no cover - the loop returns or raises

    def _acquire(self) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return _Connection(self.host, self.port, self.timeout)
        except OSError as exc:
            raise RpcTransportError(f"cannot connect to {self.host}:{self.port}: {exc}") from None

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
