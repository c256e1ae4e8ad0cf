"""The `consortium` command line.

Every failure a user can act on prints one line (what is wrong; what to do) and exits non-zero;
the traceback is shown only with --debug.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from node.cli import audit, evidence, governance, network, pool, settle, stats
from node.cli import node as node_group
from node.connect import connect_chain, node_url
from node.connect import reader as chain_reader
from node.errors import ConsortiumError

# Chain, store, web and table modules (web3, sqlalchemy, fastapi, httpx, rich) are imported inside the commands
# that use them: `consortium --help` imports every CLI module, and those take about a second to load.

DEFAULT_HOME = Path(".consortium")
# Every command group, each in its own module with register(subparsers): `consortium --help` lists them in this order.
COMMAND_GROUPS = (governance, node_group, evidence, audit, stats, network, settle, pool)


def _cmd_demo(args: argparse.Namespace) -> int:
    from node.demo import run_demo

    run_demo(Path(args.home) if args.home else None, as_json=args.json)
    return 0


def _cmd_chain_up(args: argparse.Namespace) -> int:
    from node.chain.anvil import free_port
    from node.console import stdout_console, step_progress
    from node.network.devnet import (
        DEFAULT_MEMBERS,
        chain_description,
        dev_passphrase,
        parse_founders,
        start_dev_consortium,
        write_json_atomic,
        write_member_configs,
    )

    console = stdout_console(stderr=True)
    home = Path(args.home)
    founders = parse_founders(args.member) if args.member else DEFAULT_MEMBERS
    # Each founder gets a node config with its own port; the endpoint goes on the registry at genesis so
    # peers (statistics jobs, `data query`) find the node by name.
    ports = {name: free_port() for name, _ in founders}
    endpoints = {name: node_url("127.0.0.1", port) for name, port in ports.items()}

    # Progress on a terminal only (node/console.py): piped, an error stays one line.
    with step_progress(console, "chain up") as progress:
        dev = start_dev_consortium(home, port=args.port, block_time=args.block_time, members=founders,
                                   endpoints=endpoints, progress=progress)
    configs = write_member_configs(home, founders, ports, dev.gateway.rpc_url, dev.deployment_path)
    dev_passphrase(home)  # the file exists unless CONSORTIUM_PASSPHRASE was set
    info = chain_description(home, rpc_url=dev.gateway.rpc_url, deployment=dev.deployment_path,
                             chain_id=dev.deployment.chain_id, founders=founders,
                             addresses={n: k.address for n, k in dev.keys.items()}, configs=configs, endpoints=endpoints)
    write_json_atomic(home / "chain.json", info)  # written last: its presence means the chain is up and deployed
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        console.print(f"RPC URL:     [bold]{info['rpc_url']}[/bold]")
        console.print(f"deployment:  [bold]{info['deployment']}[/bold]")
        console.print(f"member keys: {info['keys']} (encrypted)")
        for name, role in founders:
            console.print(f"  {name:<20} {role.name:<10} {info['members'][name]}  {configs[name]}", highlight=False)
        secret = (f"CONSORTIUM_PASSPHRASE_FILE={info['passphrase_file']}" if info["passphrase_file"]
                  else "CONSORTIUM_PASSPHRASE (as set now)")
        console.print(f"start a member's node: {secret} consortium node start --config {configs[founders[0][0]]}",
                      highlight=False, soft_wrap=True)
        console.print("chain is up; press Ctrl-C to stop it")
        print(info["rpc_url"], info["deployment"], flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop and dev.anvil.process.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        (home / "chain.json").unlink(missing_ok=True)
        dev.stop()
    return 0


def _cmd_chain_info(args: argparse.Namespace) -> int:
    path = Path(args.home) / "chain.json"
    if not path.exists():
        raise ConsortiumError(f"no chain is up with home {args.home} ({path} is absent)", reason="not_running",
                              hint=f"start it with `consortium chain up --home {args.home} --member NAME:ROLE ...`")
    info = json.loads(path.read_text())
    if args.get:
        if args.get not in info:
            raise ConsortiumError(f"chain info has no {args.get!r}", reason="bad_argument", hint=f"use one of: {', '.join(info)}")
        value = info[args.get]
        print(value if isinstance(value, str) else json.dumps(value))
    else:
        print(json.dumps(info, indent=None if args.json else 2))
    return 0


def _cmd_chain_fund(args: argparse.Namespace) -> int:
    from node.members import MemberDirectory

    gateway, _ = _connect(args)
    address = MemberDirectory.from_chain(gateway).resolve(args.member)
    gateway.fund(address, args.ether)
    balance = gateway.w3.eth.get_balance(address) / 10**18
    out = {"address": address, "funded_ether": args.ether, "balance_ether": balance}
    print(json.dumps(out) if args.json else f"funded {args.member} ({address}) with {args.ether} ether; balance {balance:g}")
    return 0


def _connect(args: argparse.Namespace):
    return connect_chain(args.rpc, args.deployment)


def _cmd_chain_check(args: argparse.Namespace) -> int:
    gateway, deployment = _connect(args)
    result = {"chain_id": gateway.chain_id, "block": gateway.block_number(), "contracts": deployment.contracts, "ok": True}
    print(json.dumps(result) if args.json else f"deployment matches chain {gateway.chain_id} at block {result['block']}")
    return 0


def _cmd_members(args: argparse.Namespace) -> int:
    from rich.table import Table

    gateway, _ = _connect(args)
    reader = chain_reader(gateway)
    members = reader.members()
    if args.resolve:
        from node.members import resolve_member

        print(resolve_member(args.resolve, members))
        return 0
    threshold = reader.threshold()
    if args.json:
        print(json.dumps([{"address": m.address, "name": m.name, "role": m.role.name, "status": m.status.name,
                           "endpoint": m.endpoint} for m in members]))
        return 0
    from node.console import stdout_console

    table = Table(title="Consortium members", caption=f"an admission or expulsion needs {threshold['votes_needed']} of "
                  f"{threshold['electorate']} votes (more than two thirds of the members not expelled)")
    for col in ("name", "address", "role", "status", "endpoint"):
        table.add_column(col, no_wrap=True)
    for m in members:
        table.add_row(m.name, m.address, m.role.name, m.status.name, m.endpoint)
    stdout_console().print(table)
    return 0


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from node.keys import create_member_keys, resolve_passphrase

    keys = create_member_keys(args.folder, resolve_passphrase())
    out = {"address": keys.address, "x25519": keys.x25519_public.hex(), "folder": str(args.folder)}
    print(json.dumps(out) if args.json else f"created {args.folder}: account {keys.address}")
    return 0


def _cmd_keys_show(args: argparse.Namespace) -> int:
    from node.keys import load_member_keys, resolve_passphrase

    keys = load_member_keys(args.folder, resolve_passphrase())
    out = {"address": keys.address, "x25519": keys.x25519_public.hex()}
    print(json.dumps(out) if args.json else f"account {keys.address}\nx25519  {out['x25519']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consortium", description="Insurance data consortium node")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the consortium scenario on a local chain")
    demo.add_argument("--json", action="store_true", help="print a machine-readable summary")
    demo.add_argument("--home", help="keep keys and deployment in this folder (default: a temporary one)")
    demo.set_defaults(func=_cmd_demo)

    chain = sub.add_parser("chain", help="local chain and deployments").add_subparsers(dest="chain_command", required=True)
    up = chain.add_parser("up", help="start a local anvil, deploy, and stay up until interrupted")
    up.add_argument("--home", default=str(DEFAULT_HOME / "dev"), help="folder for keys and deployment.json")
    up.add_argument("--port", type=int, help="port for anvil (default: a free one)")
    up.add_argument("--block-time", type=float, help="mine a block every N seconds instead of per transaction")
    up.add_argument("--member", action="append", metavar="NAME:ROLE",
                    help="a founding member (repeat for each; roles: insurer, platform, tech, auditor, regulator); "
                         "default: five demo members")
    up.add_argument("--json", action="store_true")
    up.set_defaults(func=_cmd_chain_up)
    info = chain.add_parser("info", help="what `chain up` started: RPC URL, deployment, members, node configs")
    info.add_argument("--home", default=str(DEFAULT_HOME / "dev"))
    info.add_argument("--get", help="print one field, e.g. rpc_url or deployment")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_chain_info)
    fund = chain.add_parser("fund", help="give a member's account ether for gas (development chains)")
    fund.add_argument("member", help="member name or address")
    fund.add_argument("--ether", type=int, default=100)
    fund.set_defaults(func=_cmd_chain_fund)
    check = chain.add_parser("check", help="check that a deployment file matches a chain")
    members = sub.add_parser("members", help="list consortium members")
    for p in (check, members, fund):
        p.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
        p.add_argument("--deployment", required=True, help="deployment file (JSON)")
        p.add_argument("--json", action="store_true")
    check.set_defaults(func=_cmd_chain_check)
    members.add_argument("--resolve", metavar="NAME", help="print the address of this member name and exit")
    members.set_defaults(func=_cmd_members)

    keys = sub.add_parser("keys", help="member keys (encrypted at rest)").add_subparsers(dest="keys_command", required=True)
    new = keys.add_parser("new", help="create keys in FOLDER (passphrase from CONSORTIUM_PASSPHRASE[_FILE])")
    show = keys.add_parser("show", help="decrypt and show the public parts of the keys in FOLDER")
    for p, fn in ((new, _cmd_keys_new), (show, _cmd_keys_show)):
        p.add_argument("folder", type=Path)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=fn)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConsortiumError as exc:
        if args.debug:
            raise
        print(f"consortium: error: {exc.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("consortium: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected environment: still one line by default
        if args.debug:
            raise
        print(f"consortium: unexpected error: {type(exc).__name__}: {exc}; rerun with --debug for the traceback",
              file=sys.stderr)
        return 1

