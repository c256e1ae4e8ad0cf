"""The node's most frequent request, POST /data/query, served without the framework's routing layers.

Routing, FastAPI's per-route wrappers (two exit stacks, exception wrapping, dependency plumbing) and
the exception middleware cost about a sixth of the node's CPU per authorized query (``bench.py
node-access --profile``: 17 % of samples were in those layers, outside the route and the socket). Here
the request goes through the layers FastAPI itself puts around a route, built from the same parts
(ServerErrorMiddleware, the app's user middleware — body limit, body deadline, security headers — and
Starlette's ExceptionMiddleware with the app's own exception handlers), then straight to the route's own
function (``node/api/data.py`` ``query``), without routing. Every other request takes the full stack.
The route stays declared, so OpenAPI and the access table still describe it.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from node.api import data

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
        # As FastAPI.build_middleware_stack splits them: 500/Exception for the outer layer, the rest for the inner.
        handlers = dict(app.exception_handlers)
        error_handler = None
        for key in (500, Exception):
            error_handler = handlers.pop(key, error_handler)
        lane: ASGIApp = ExceptionMiddleware(self._serve, handlers=handlers, debug=app.debug)
        for middleware in reversed(app.user_middleware):  # the same user middleware, in the same order
            lane = middleware.cls(lane, *middleware.args, **middleware.kwargs)
        self.lane = ServerErrorMiddleware(lane, handler=error_handler, debug=app.debug)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == LANE_PATH:
            self.app.lane_served += 1
            return await self.lane(scope, receive, send)
        await self.stack(scope, receive, send)

    @staticmethod
    async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
        response = await data.query(Request(scope, receive, send))
        await response(scope, receive, send)
