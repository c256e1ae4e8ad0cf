"""CLI commands of the member node: `consortium node start` and `consortium data import`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cmd_node_start(args: argparse.Namespace) -> int:
    import logging

    from node.app import create_app
    from node.http_server import serve
    from node.context import NodeContext
    from node.settings import load_settings

    logging.basicConfig(level=logging.INFO, format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}')
    settings = load_settings(args.config)
    ctx = NodeContext.build(settings)
    ctx.start()
    try:
        serve(create_app(ctx), settings)  # node/http_server.py: slow clients bounded by the http_* settings
    finally:
        ctx.stop()
    return 0


def _cmd_data_import(args: argparse.Namespace) -> int:
    from node.datasets import import_csv, init_datasets
    from node.settings import load_settings
    from node.store.db import create_store_engine

    settings = load_settings(args.config)
    engine = create_store_engine(settings.db_url)
    init_datasets(engine)
    rows = import_csv(engine, args.dataset, Path(args.file))
    print(json.dumps({"dataset": args.dataset, "rows": rows}) if args.json else f"imported {rows} rows into {args.dataset}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from node import governance_cli

    governance_cli.register(sub)  # grant, consent and gov commands
    node = sub.add_parser("node", help="run a member node").add_subparsers(dest="node_command", required=True)
    start = node.add_parser("start", help="serve the node API (settings from --config and CONSORTIUM_* variables)")
    start.add_argument("--config", required=True, type=Path, help="the node's TOML settings file")
    start.set_defaults(func=_cmd_node_start)

    data = sub.add_parser("data", help="the member's local datasets").add_subparsers(dest="data_command", required=True)
    imp = data.add_parser("import", help="import a CSV file into a declared dataset, all rows or none")
    imp.add_argument("dataset", help="policies, claims, user_features or fraud_list")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--config", required=True, type=Path)
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=_cmd_data_import)
