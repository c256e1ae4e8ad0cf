"""`consortium network ...`: init, up, down, status and allowlist of a multi-validator network."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.cli.options import chain_options, connect, json_option


def _anvil(folder) -> bool:
    from node.network.anvil import is_anvil_network

    return is_anvil_network(folder)


def _cmd_init(args: argparse.Namespace) -> int:
    if args.engine == "anvil":  # the local engine lives in node/network/anvil.py
        from node.network.anvil import cmd_init

        return cmd_init(args)
    if args.engine == "besu-qbft":
        from node.network.besu import init_besu_qbft
        from node.network.clique import DEFAULT_MEMBERS

        names = [n for n, _ in DEFAULT_MEMBERS][: args.validators]
        if args.validators > len(DEFAULT_MEMBERS):
            names += [f"validator-{i}" for i in range(len(DEFAULT_MEMBERS), args.validators)]
        data = init_besu_qbft(args.folder, names, block_period=args.period)
        out = {"folder": str(args.folder), "engine": "besu-qbft", "chain_id": data["chain_id"],
               "validators": [m["address"] for m in data["members"]]}
    else:
        from node.network.clique import init_clique

        spec = init_clique(args.folder, validators=args.validators, period=args.period,
                           confirmations=args.confirmations)
        out = {"folder": str(args.folder), "engine": "clique", "chain_id": spec.chain_id,
               "signers": [m.address for m in spec.members if m.validator]}
    print(json.dumps(out) if args.json else
          f"{out['engine']} network written to {args.folder} (chain id {out['chain_id']}); "
          + (f"start it with `consortium network up {args.folder}`" if args.engine == "clique"
             else "copy each member's folder to its host (see the README)"))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    if _anvil(args.folder):
        from node.network.anvil import cmd_up

        return cmd_up(args)
    from node.network.clique import up

    info = up(args.folder)
    print(json.dumps(info) if args.json else
          "\n".join([f"network up; deployment {info['deployment']} (EVM {info['evm_version']})"]
                    + [f"  {name}: {url}" for name, url in info["rpc"].items()]))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    if _anvil(args.folder):
        from node.network.anvil import cmd_down

        return cmd_down(args)
    from node.network.clique import down

    names = down(args.folder)
    print(json.dumps({"stopped": names}) if args.json else f"stopped {len(names)} chain nodes")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    if _anvil(args.folder):
        from node.network.anvil import cmd_status

        return cmd_status(args)
    from node.network.clique import status

    rows = status(args.folder)
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        if not r["running"]:
            print(f"{r['name']:<14} {r['signer']}  down")
            continue
        sealing = "signer" if r.get("signers") and r["signer"].lower() in [s.lower() for s in r["signers"]] else "not a signer"
        print(f"{r['name']:<14} {r['signer']}  head {r.get('head')}  peers {r.get('peers')}  {sealing}  "
              f"latest sealed by {r.get('sealed_latest')}")
    return 0


def _cmd_allowlist(args: argparse.Namespace) -> int:
    from node.network.besu import allowlist_from_registry

    members = connect(args)[0].members()
    out = allowlist_from_registry(args.folder, members)
    print(json.dumps(out) if args.json else
          f"permissions_config.toml: {len(out['nodes_allowlist'])} nodes, {len(out['accounts_allowlist'])} accounts")
    return 0


def register(sub) -> None:
    net = sub.add_parser("network", help="a consortium's chain: local anvil (default), geth Clique, a Besu QBFT kit")
    cmds = net.add_subparsers(dest="network_command", required=True)
    init = cmds.add_parser("init", help="write a network folder (keys, genesis, node configs)")
    init.add_argument("folder", type=Path)
    init.add_argument("--engine", choices=("anvil", "clique", "besu-qbft"), default="anvil",
                      help="anvil: one local chain for your founders (--member or --members-file); clique, besu-qbft: "
                           "one validator per member")
    init.add_argument("--member", action="append", metavar="NAME:ROLE", help="anvil: a founding member (repeat)")
    init.add_argument("--members-file", type=Path, help="anvil: a TOML file of [[member]] name, role, endpoint")
    init.add_argument("--chain-port", type=int, help="anvil: the chain's port (default: a free one, fixed at init)")
    init.add_argument("--validators", type=int, default=4, help="validators (signers); besu-qbft needs 4 or more")
    init.add_argument("--period", type=int, default=1, help="block period in seconds")
    init.add_argument("--confirmations", type=int, default=2, help="blocks on top before a transaction is settled")
    init.set_defaults(func=_cmd_init)
    for name, fn, text in (("up", _cmd_up, "start every member's geth, wait for blocks, deploy the contracts"),
                           ("down", _cmd_down, "stop the network's geth processes"),
                           ("status", _cmd_status, "peers, head, signers and who sealed the latest block")):
        p = cmds.add_parser(name, help=text)
        p.add_argument("folder", type=Path)
        p.set_defaults(func=fn)
    allow = cmds.add_parser("allowlist", help="regenerate a Besu kit's permissions_config.toml from the registry")
    allow.add_argument("folder", type=Path)
    chain_options(allow)
    allow.set_defaults(func=_cmd_allowlist)
    for p in (init, *(cmds.choices[n] for n in ("up", "down", "status"))):
        json_option(p)
