"""`consortium data import`, `data query` and `data schema`: this member's datasets, another member's by name.

`data query` signs the request with this member's key (node/client.py) and sends it to the data
owner's node, found by name on the registry (its endpoint) unless ``--url`` is given. The owner's
node decides, under its grant on chain, and logs the access or refusal on chain.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.cli.options import config_option, connect, directory, json_option, node_answer, print_table, settings
from node.enums import PURPOSE_NAMES
from node.errors import ConsortiumError


def open_member_client(args: argparse.Namespace, target: str, url: str | None = None, ca: str | None = None):
    """A signed client from this member (settings' keys) to the node of member ``target`` (name or address).

    Returns (client, target record). The request's audience is the target's address, so a signed
    request for one node is refused by any other.
    """
    from node.client import NodeClient

    ledger, _ = connect(args, signed=True)
    record = directory(ledger).record(target)
    base = url or record.endpoint
    if not base:
        raise ConsortiumError(f"member {record.name} has no node endpoint on the registry", reason="no_endpoint",
                              hint=f"pass --url, or ask {record.name} to run `consortium gov endpoint URL --config NODE.toml`")
    tls_certfile = settings(args).tls_certfile
    verify: bool | str = ca or (str(tls_certfile) if tls_certfile else True)
    return NodeClient(base, ledger.account, record.address, ledger.gateway.chain_id, verify=verify), record


def _filters(schema, specs: list[str]) -> dict:
    out = {}
    for spec in specs:
        column, sep, value = spec.partition("=")
        if not sep:
            raise ConsortiumError(f"--filter {spec!r} is not COLUMN=VALUE", reason="bad_argument",
                                  hint="e.g. --filter status=paid")
        kind = schema.field(column.strip()).kind
        try:
            out[column.strip()] = int(value) if kind == "int" else float(value) if kind == "float" else value
        except ValueError:
            raise ConsortiumError(f"--filter {spec!r}: {column} is a {kind} column", reason="bad_argument",
                                  hint="give a number") from None
    return out


def _cmd_query(args: argparse.Namespace) -> int:
    import httpx

    from node.store.datasets import dataset_schema

    schema = dataset_schema(args.dataset)
    body = {"dataset": schema.name, "purpose": args.purpose, "metric": args.metric, "column": args.column,
            "filters": _filters(schema, args.filter or []), "group_by": args.group_by}
    client, owner = open_member_client(args, args.owner, args.url, args.ca)
    try:
        response = client.request("POST", "/data/query", body)
    except httpx.HTTPError as exc:
        raise ConsortiumError(f"cannot reach {owner.name}'s node at {client.base_url}: {type(exc).__name__}",
                              reason="unreachable", hint="check that the node runs, or pass --url") from None
    finally:
        client.close()
    answer = node_answer(response, f"{owner.name} refused the query")
    if args.json:
        print(json.dumps({"owner": owner.address, "owner_name": owner.name, **answer}))
        return 0
    what = args.metric if args.metric == "count" else f"{args.metric}({args.column})"
    columns = (["group"] if args.group_by else []) + ["value", "records"]
    print_table(f"{what} over {owner.name}'s {schema.name} (grant {answer['grant_id']}, {answer['records']} records)",
                [args.group_by if c == "group" else c for c in columns],
                [["" if row.get(c) is None else row[c] for c in columns] for row in answer["rows"]], right=("value", "records"))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from node.store.datasets import SCHEMAS, dataset_schema

    schemas = [dataset_schema(args.dataset)] if args.dataset else list(SCHEMAS.values())
    out = [{"dataset": s.name, "key": s.key,
            "columns": [{"name": f.name, "type": f.kind, "required": f.required} for f in s.fields]} for s in schemas]
    if args.json:
        print(json.dumps(out if not args.dataset else out[0]))
        return 0
    for s in out:
        cols = ", ".join(f"{c['name']} {c['type']}{'' if c['required'] else ' (optional)'}" for c in s["columns"])
        print(f"{s['dataset']}: key {s['key']}; {cols}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from node.store.datasets import import_csv, init_datasets
    from node.store.db import create_store_engine

    engine = create_store_engine(settings(args).db_url)
    init_datasets(engine)
    rows = import_csv(engine, args.dataset, Path(args.file), allow_empty=args.replace_with_empty)
    print(json.dumps({"dataset": args.dataset, "rows": rows}) if args.json else f"imported {rows} rows into {args.dataset}")
    return 0


def register(sub) -> None:
    data = sub.add_parser("data", help="the member's local datasets").add_subparsers(dest="data_command", required=True)
    imp = data.add_parser("import", help="import a CSV file into a declared dataset, all rows or none")
    imp.add_argument("dataset", help="policies, claims, user_features or fraud_list")
    imp.add_argument("file", help="CSV file with a header row")
    config_option(imp)
    imp.add_argument("--replace-with-empty", action="store_true",
                     help="accept a CSV with a header and no rows: empty the dataset (refused otherwise)")
    json_option(imp)
    imp.set_defaults(func=_cmd_import)
    query = data.add_parser("query", help="an aggregate over another member's dataset, under your grant from it")
    query.add_argument("owner", help="the data owner: member name or address")
    query.add_argument("--dataset", required=True, help="policies, claims, user_features or fraud_list")
    query.add_argument("--purpose", required=True, choices=PURPOSE_NAMES)
    query.add_argument("--metric", default="count", choices=["count", "sum", "mean"])
    query.add_argument("--column", help="the numeric column for sum and mean")
    query.add_argument("--filter", action="append", metavar="COLUMN=VALUE", help="equality filter (repeatable)")
    query.add_argument("--group-by", help="one column to group by")
    query.add_argument("--url", help="the owner's node URL (default: its endpoint on the registry)")
    query.add_argument("--ca", help="CA bundle for the owner's TLS certificate")
    config_option(query, "your node's TOML settings (your keys, chain)")
    json_option(query)
    query.set_defaults(func=_cmd_query)
    schema = data.add_parser("schema", help="the declared datasets: columns, types, key column")
    schema.add_argument("dataset", nargs="?")
    json_option(schema)
    schema.set_defaults(func=_cmd_schema)
