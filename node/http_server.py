"""Serving the node's app with uvicorn, with every slow client bounded.

uvicorn's own keep-alive timer is reset by every byte a client sends and is not armed at all on a new
connection, so a client that trickles its request headers (slowloris) holds a connection for ever.
``BoundedH11Protocol`` adds a header deadline that no byte resets: the request line and headers must
be complete within ``http_header_timeout_seconds`` of the connection opening (or of the previous
response on a keep-alive connection). The body's deadline is the application's (node/app.py).
"""
from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from node.settings import NodeSettings


class BoundedH11Protocol(H11Protocol):
    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        # IDLE: the request line and headers of the current request have not been parsed yet.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)


def protocol_for(settings: NodeSettings) -> type[H11Protocol]:
    return type("NodeH11Protocol", (BoundedH11Protocol,), {"header_timeout": settings.http_header_timeout_seconds})


def uvicorn_options(settings: NodeSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": "warning", "access_log": False,
        "http": protocol_for(settings),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
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
