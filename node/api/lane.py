"""The node's most frequent request, POST /data/query, served without the framework's routing layers.

Routing, FastAPI's per-route wrappers (two exit stacks, exception wrapping, dependency plumbing) and
the exception middleware cost about a sixth of the node's CPU per authorized query (``bench.py
node-access --profile``: 17 % of samples were in those layers, outside the route and the socket). Here
the request goes through the same user middleware as every other request (body limit, body deadline,
security headers, built from the app's own list), then straight to the route's own function
(``node/api/data.py`` ``query``); its errors are answered by the app's own exception handlers, and
anything unhandled by the same ServerErrorMiddleware. Every other request takes the full stack. The
route stays declared, so OpenAPI and the access table still describe it.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from node.api import data

log = logging.getLogger(__name__)

LANE_PATH = "/data/query"


class NodeApp(FastAPI):
    """FastAPI with the data-query lane in front of its middleware stack."""

    lane_served = 0  # requests the lane answered: tests check that the route's traffic takes it

    def build_middleware_stack(self) -> ASGIApp:
        return DataQueryLane(super().build_middleware_stack(), self)


class DataQueryLane:
    def __init__(self, stack: ASGIApp, app: NodeApp):
        self.stack = stack
        self.app = app
        handlers = dict(app.exception_handlers)
        error_handler = handlers.pop(500, None) or handlers.pop(Exception, None)
        self.handlers = {k: v for k, v in handlers.items() if not isinstance(k, int) and k is not Exception}
        lane: ASGIApp = self._serve
        for middleware in reversed(app.user_middleware):  # the same user middleware, in the same order
            lane = middleware.cls(lane, *middleware.args, **middleware.kwargs)
        self.lane = ServerErrorMiddleware(lane, handler=error_handler, debug=app.debug)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == LANE_PATH:
            self.app.lane_served += 1
            return await self.lane(scope, receive, send)
        await self.stack(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await data.query(request)
        except Exception as exc:
            handler = _lookup_exception_handler(self.handlers, exc)
            if handler is None:
                raise  # ServerErrorMiddleware answers 500 and logs it, as for any route
            response = await handler(request, exc) if is_async_callable(handler) else \
                await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)
