"""Serving the node's app with uvicorn, with every slow client bounded.

uvicorn's own keep-alive timer is reset by every byte a client sends and is not armed at all on a new
connection, so a client that trickles its request headers (slowloris) holds a connection for ever.
The protocols here add a header deadline that no byte resets: the request line and headers must be
complete within ``http_header_timeout_seconds`` of the connection opening (or of the previous response
on a keep-alive connection), and at most ``http_max_header_bytes`` long. The body's deadline is the
application's (node/api/app.py).

The HTTP parser is httptools (C, llhttp) on the uvloop event loop when both are installed: on the
authorized request path the pure-Python h11 parser and the default asyncio loop cost more CPU than the
signature check (``bench.py node-access --profile``). h11 with the same bounds is the fallback.
"""
from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from node.runtime.settings import NodeSettings

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 keeps the node serving without it
    httptools = None
    HttpToolsProtocol = None


class _HeaderDeadline:
    """The header deadline shared by both protocols: armed on connect and after each response."""

    header_timeout: float = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _awaiting_headers(self) -> bool:
        raise NotImplementedError


class BoundedH11Protocol(_HeaderDeadline, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = None
        self._arm_header_deadline()

    def _awaiting_headers(self) -> bool:
        # IDLE: the request line and headers of the current request have not been parsed yet.
        return self.conn.their_state is h11.IDLE

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)


class _HeadersTooLarge(Exception):
    pass


class _CorkedTransport:
    """A transport that sends a response's header together with the first body write that follows it.

    uvicorn writes a response's status line and headers, then its body, as two writes: two sends and two
    TCP segments for every small JSON answer. Joined (and sent at once, so nothing else is reordered) they are one
    (``bench.py node-access --profile``: the header write was the single largest line of the request path).
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self._pending:  # the body after the header: both go out now, as one send
            self._pending.append(data)
            self._flush()
            return
        self._pending.append(data)  # a header waits for its body, at most until the end of this loop iteration
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending = []
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, ...: the real transport's
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:
    class BoundedHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        max_header_bytes: int = 16 * 1024

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = _CorkedTransport(transport, self.loop)  # type: ignore[assignment]
            self._header_deadline = None
            self._waiting = True  # for the request line and headers of the next request
            self._header_bytes = 0
            self._arm_header_deadline()

        def _awaiting_headers(self) -> bool:
            # Also while the rest of an already answered request's body arrives: nothing on this connection is
            # being served, so the deadline holds it as it holds a connection waiting for headers.
            return self._waiting or (self.cycle is not None and self.cycle.response_complete)

        def data_received(self, data: bytes) -> None:
            if self._waiting:
                self._header_bytes += len(data)
            super().data_received(data)
            # Still no end of headers after more than the limit: every byte so far was request line and headers.
            if self._waiting and self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self.send_400_response("Invalid HTTP request received.")

        def on_headers_complete(self) -> None:
            # Headers that came complete in one large read: measured from what the parser saw (only needed when
            # more than the limit arrived while waiting for them, which counts any body bytes read with them too).
            if self._header_bytes > self.max_header_bytes and \
                    len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > self.max_header_bytes:
                raise _HeadersTooLarge()  # httptools turns it into a parser error: 400 and close, like h11
            self._waiting = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            # The parser reached the end of this request's body: what follows is the next request's line and headers.
            # Not on_response_complete: an answer sent before the body was read (a 401 on headers alone) leaves
            # the body still to come, and its bytes are this request's, never the next one's headers.
            self._waiting = True
            self._header_bytes = 0
            answered_early = self.cycle is not None and self.cycle.response_complete
            super().on_message_complete()
            if answered_early and not self.transport.is_closing():
                self._arm_header_deadline()  # the next request's headers get a deadline of their own

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_deadline()
            super().connection_lost(exc)


def protocol_for(settings: NodeSettings, parser: str = "auto") -> type:
    """The bounded protocol class: ``parser`` "httptools", "h11" or "auto" (httptools when installed)."""
    bounds: dict[str, Any] = {"header_timeout": settings.http_header_timeout_seconds}
    if parser != "h11" and HttpToolsProtocol is not None:
        return type("NodeHttpToolsProtocol", (BoundedHttpToolsProtocol,),
                    {**bounds, "max_header_bytes": settings.http_max_header_bytes})
    return type("NodeH11Protocol", (BoundedH11Protocol,), bounds)


def uvicorn_options(settings: NodeSettings, parser: str = "auto") -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": "warning", "access_log": False,
        "http": protocol_for(settings, parser), "loop": "auto",  # auto: uvloop when installed
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        # No X-Forwarded-* rewriting: the node never uses the client's address (requests are told apart by signer).
        "proxy_headers": False,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,
        # A short graceful shutdown: idle keep-alive connections of peers must not hold a stop for long.
        "timeout_graceful_shutdown": 3,
    }
    if settings.tls_certfile and settings.tls_keyfile:
        options.update(ssl_certfile=str(settings.tls_certfile), ssl_keyfile=str(settings.tls_keyfile))
    return options


def serve(app, settings: NodeSettings, sock=None) -> None:
    """``sock``: an already bound, listening socket (the node reserves its port before it starts anything)."""
    if sock is None:
        uvicorn.run(app, **uvicorn_options(settings))
        return
    uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings))).run(sockets=[sock])
