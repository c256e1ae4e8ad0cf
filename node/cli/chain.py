"""`consortium demo`, `consortium chain ...` (a local development chain) and `consortium members`."""
from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from node.cli.options import chain_options, connect, directory, json_option, print_table
from node.connect import node_url
from node.errors import ConsortiumError

DEFAULT_HOME = Path(".consortium")


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
    ledger, _ = connect(args)
    address = directory(ledger).resolve(args.member)
    gateway = ledger.gateway
    gateway.fund(address, args.ether)
    balance = gateway.w3.eth.get_balance(address) / 10**18
    out = {"address": address, "funded_ether": args.ether, "balance_ether": balance}
    print(json.dumps(out) if args.json else f"funded {args.member} ({address}) with {args.ether} ether; balance {balance:g}")
    return 0


def _cmd_chain_check(args: argparse.Namespace) -> int:
    ledger, deployment = connect(args)
    gateway = ledger.gateway
    result = {"chain_id": gateway.chain_id, "block": gateway.block_number(), "contracts": deployment.contracts, "ok": True}
    print(json.dumps(result) if args.json else f"deployment matches chain {gateway.chain_id} at block {result['block']}")
    return 0


def _cmd_members(args: argparse.Namespace) -> int:
    ledger, _ = connect(args)
    if args.resolve:
        print(directory(ledger).resolve(args.resolve))
        return 0
    members = ledger.members()
    if args.json:
        print(json.dumps([{"address": m.address, "name": m.name, "role": m.role.name, "status": m.status.name,
                           "endpoint": m.endpoint} for m in members]))
        return 0
    threshold = ledger.threshold()
    print_table("Consortium members", ("name", "address", "role", "status", "endpoint"),
                [(m.name, m.address, m.role.name, m.status.name, m.endpoint) for m in members], no_wrap=True,
                caption=f"an admission or expulsion needs {threshold['votes_needed']} of {threshold['electorate']} votes "
                        "(more than two thirds of the members not expelled)")
    return 0



def register(sub) -> None:
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
    json_option(up)
    up.set_defaults(func=_cmd_chain_up)
    info = chain.add_parser("info", help="what `chain up` started: RPC URL, deployment, members, node configs")
    info.add_argument("--home", default=str(DEFAULT_HOME / "dev"))
    info.add_argument("--get", help="print one field, e.g. rpc_url or deployment")
    json_option(info)
    info.set_defaults(func=_cmd_chain_info)
    fund = chain.add_parser("fund", help="give a member's account ether for gas (development chains)")
    fund.add_argument("member", help="member name or address")
    fund.add_argument("--ether", type=int, default=100)
    fund.set_defaults(func=_cmd_chain_fund)
    check = chain.add_parser("check", help="check that a deployment file matches a chain")
    check.set_defaults(func=_cmd_chain_check)
    members = sub.add_parser("members", help="list consortium members")
    members.add_argument("--resolve", metavar="NAME", help="print the address of this member name and exit")
    members.set_defaults(func=_cmd_members)
    for p in (check, members, fund):
        chain_options(p)
