"""`consortium node start`, `node wait` and `node init`: run a member's node and wait until it is ready."""
from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from pathlib import Path

from node.cli.options import config_option, json_option, own_node, settings
from node.errors import ConsortiumError


def reserve_port(host: str, port: int):
    """Bind and listen on the node's port before anything else starts, so a second start of the same node
    fails at once with one line (and not after loading keys, with uvicorn's errno). uvicorn serves on it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConsortiumError(f"cannot listen on {host}:{port}: {exc.strerror} (is this node already running?)",
                              reason="port_in_use",
                              hint="stop the process using it, or set another `port` in the node's TOML") from None
    sock.set_inheritable(True)
    return sock


def _cmd_node_start(args: argparse.Namespace) -> int:
    from node.api.app import create_app
    from node.runtime.context import NodeContext
    from node.runtime.http_server import serve
    logging.basicConfig(level=logging.INFO, format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}')
    node_settings = settings(args)
    sock = reserve_port(node_settings.host, node_settings.port)  # before anything starts: one clear line, not a half-started node
    try:
        ctx = NodeContext.build(node_settings)
        ctx.start()
        try:
            serve(create_app(ctx), node_settings, sock)  # node/runtime/http_server.py: slow clients bounded by the http_* settings
        finally:
            ctx.stop()
    finally:
        sock.close()
    return 0


def _cmd_node_init(args: argparse.Namespace) -> int:
    from node.network.devnet import check_member_names, write_node_config

    check_member_names([args.name])
    if (args.folder / "node.toml").exists():
        raise ConsortiumError(f"{args.folder / 'node.toml'} already exists", reason="exists",
                              hint="edit it, or choose another folder")
    path = write_node_config(args.folder.resolve(), args.name, args.keys.resolve(), args.rpc, args.deployment.resolve(),
                             args.port)
    print(json.dumps({"config": str(path)}) if args.json else f"wrote {path}")
    return 0


def _cmd_node_wait(args: argparse.Namespace) -> int:
    """Poll the node's /ready (signed as its operator, so the reason comes with its message)."""
    import httpx

    client = own_node(args)
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    try:
        while True:
            try:
                r = client.request("GET", "/ready")
                if r.status_code == 200:
                    print(json.dumps(r.json()) if args.json else f"ready at block {r.json()['block']}")
                    return 0
                detail = r.json().get("detail", {})
                if f"{detail.get('reason')}: {detail.get('message')}" != last and detail.get("reason") != "starting":
                    print(f"waiting: {detail.get('reason')}: {detail.get('message')}", file=sys.stderr, flush=True)
                last = f"{detail.get('reason')}: {detail.get('message')}"
                if detail.get("reason") == "key_not_ready":  # persistent until fixed: no point waiting
                    break
            except httpx.HTTPError as exc:
                last = f"no answer ({type(exc).__name__})"
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        client.close()
    raise ConsortiumError(f"node {args.config} is not ready: {last}", reason="not_ready", hint="see the node's log")


def register(sub: argparse._SubParsersAction) -> None:
    node = sub.add_parser("node", help="run a member node").add_subparsers(dest="node_command", required=True)
    start = node.add_parser("start", help="serve the node API (settings from --config and CONSORTIUM_* variables)")
    config_option(start, "the node's TOML settings file")
    start.set_defaults(func=_cmd_node_start)
    wait = node.add_parser("wait", help="wait until the node is ready (exit 1 with the reason when it is not)")
    config_option(wait)
    wait.add_argument("--timeout", type=float, default=120.0)
    json_option(wait)
    wait.set_defaults(func=_cmd_node_wait)
    init = node.add_parser("init", help="write a node's TOML settings (for a member that joins later)")
    init.add_argument("folder", type=Path, help="the node's home; node.toml is written here")
    init.add_argument("--name", required=True, help="the member's name on the registry")
    init.add_argument("--keys", required=True, type=Path, help="the member's key folder (`consortium keys new`)")
    init.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    init.add_argument("--deployment", required=True, type=Path)
    init.add_argument("--port", type=int, default=8700)
    json_option(init)
    init.set_defaults(func=_cmd_node_init)

