"""`consortium data query` and `consortium data schema`: another member's data by name, the declared schemas.

`data query` signs the request with this member's key (node/client.py) and sends it to the data
owner's node, found by name on the registry (its endpoint) unless ``--url`` is given. The owner's
node decides, under its grant on chain, and logs the access or refusal on chain.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.connect import connect_chain
from node.enums import PURPOSE_NAMES
from node.errors import ConsortiumError

# Chain, store, web and table modules (web3, sqlalchemy, fastapi, httpx, rich) are imported inside the commands
# that use them: `consortium --help` imports every CLI module, and those take about a second to load.


class RemoteRefusal(ConsortiumError):
    reason = "refused"


def open_member_client(settings, target: str, url: str | None = None, ca: str | None = None):
    """A signed client from this member (settings' keys) to the node of member ``target`` (name or address).

    Returns (client, target record). The request's audience is the target's address, so a signed
    request for one node is refused by any other.
    """
    from node.client import NodeClient
    from node.keys import load_member_keys, resolve_passphrase
    from node.members import MemberDirectory

    keys = load_member_keys(settings.keys, resolve_passphrase())
    gateway, _ = connect_chain(settings.rpc_url, settings.deployment)
    record = MemberDirectory.from_chain(gateway).record(target)
    base = url or record.endpoint
    if not base:
        raise ConsortiumError(f"member {record.name} has no node endpoint on the registry", reason="no_endpoint",
                              hint=f"pass --url, or ask {record.name} to run `consortium gov endpoint URL --config NODE.toml`")
    verify: bool | str = ca or (str(settings.tls_certfile) if settings.tls_certfile else True)
    return NodeClient(base, keys.account, record.address, gateway.chain_id, verify=verify), record


def raise_for_answer(response, what: str) -> dict:
    """The JSON body of a 2xx answer; otherwise a one-line error with the node's machine-readable reason."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.is_success:
        return body
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        reason, message = detail.get("reason", "error"), detail.get("message", "")
    else:
        reason, message = "error", str(detail or response.text[:200])
    raise RemoteRefusal(f"{what}: HTTP {response.status_code} {reason}: {message}", reason=reason)


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

    from node.runtime.settings import load_settings
    from node.store.datasets import dataset_schema

    schema = dataset_schema(args.dataset)
    body = {"dataset": schema.name, "purpose": args.purpose, "metric": args.metric, "column": args.column,
            "filters": _filters(schema, args.filter or []), "group_by": args.group_by}
    client, owner = open_member_client(load_settings(args.config), args.owner, args.url, args.ca)
    try:
        response = client.request("POST", "/data/query", body)
    except httpx.HTTPError as exc:
        raise ConsortiumError(f"cannot reach {owner.name}'s node at {client.base_url}: {type(exc).__name__}",
                              reason="unreachable", hint="check that the node runs, or pass --url") from None
    finally:
        client.close()
    answer = raise_for_answer(response, f"{owner.name} refused the query")
    if args.json:
        print(json.dumps({"owner": owner.address, "owner_name": owner.name, **answer}))
        return 0
    from rich.table import Table

    from node.console import stdout_console

    what = args.metric if args.metric == "count" else f"{args.metric}({args.column})"
    table = Table(title=f"{what} over {owner.name}'s {schema.name} (grant {answer['grant_id']}, "
                        f"{answer['records']} records)")
    columns = (["group"] if args.group_by else []) + ["value", "records"]
    for column in columns:
        table.add_column(args.group_by if column == "group" else column, justify="left" if column == "group" else "right")
    for row in answer["rows"]:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    stdout_console().print(table)
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


def register_data(data) -> None:
    """Add `query` and `schema` to the `data` subcommands (node/cli/node.py owns the group)."""
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
    query.add_argument("--config", required=True, type=Path, help="your node's TOML settings (your keys, chain)")
    query.add_argument("--json", action="store_true")
    query.set_defaults(func=_cmd_query)
    schema = data.add_parser("schema", help="the declared datasets: columns, types, key column")
    schema.add_argument("dataset", nargs="?")
    schema.add_argument("--json", action="store_true")
    schema.set_defaults(func=_cmd_schema)
