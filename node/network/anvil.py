"""A consortium of your own on the local anvil engine: `consortium network init DIR --member NAME:ROLE ...`.

``init`` writes everything that needs no running chain: each founder's keys (encrypted; the passphrase
from CONSORTIUM_PASSPHRASE, the file CONSORTIUM_PASSPHRASE_FILE names, or ``DIR/passphrase`` made
mode 0600), the genesis member set with roles and endpoints (``DIR/network.json``), and one node config
per founder (``DIR/nodes/NAME/node.toml``, pointing at the chain's fixed port and ``DIR/deployment.json``).
``up`` starts anvil detached, its state saved in ``DIR/anvil-state.json`` (so `down` then `up` resumes the
same chain), and funds and deploys through :func:`node.network.devnet.start_dev_consortium` -- the code behind
`chain up`, one home for both. It writes ``deployment.json`` and ``chain.json`` (`chain info --home DIR`).

Gas: the founders' accounts are **funded** (100 ether each from anvil's dev accounts), not a zero gas
price. On a dev chain balances are the consortium's to set, and the nodes' EIP-1559 fee code then runs
exactly as on a production chain; a later member is funded by the voter whose vote admits it
(`gov vote`, node/members.py), with a real transfer that works on any chain.
"""
from __future__ import annotations

import json
import os
import signal
import time
import tomllib
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from node.chain.anvil import AnvilNode, free_port
from node.chain.deployment import Role
from node.connect import node_url
from node.errors import ConsortiumError
from node.network.devnet import (
    chain_description,
    check_member_names,
    dev_passphrase,
    member_keys,
    parse_founders,
    start_dev_consortium,
    write_json_atomic,
    write_member_configs,
)
from node.network.pids import alive

ENGINE = "anvil"
FORMAT = 1


class AnvilNetworkError(ConsortiumError):
    reason = "network"


def is_anvil_network(folder: str | Path) -> bool:
    """True when ``folder`` holds a network written by :func:`init` (the dispatch in node/cli/network.py)."""
    path = Path(folder) / "network.json"
    try:
        return json.loads(path.read_text()).get("engine") == ENGINE
    except (OSError, ValueError):
        return False


def read_members_file(path: str | Path) -> tuple[tuple[tuple[str, Role], ...], dict[str, str]]:
    """Founders and endpoints from a TOML file::

        [[member]]
        name = "acme-insurance"
        role = "insurer"
        endpoint = "http://127.0.0.1:8701"   # optional: a free loopback port otherwise
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise AnvilNetworkError(f"cannot read {path}: {exc.strerror}", reason="bad_argument", hint="check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise AnvilNetworkError(f"{path} is not TOML: {exc}", reason="bad_argument", hint="see `consortium network init --help`") from None
    entries = data.get("member")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise AnvilNetworkError(f"{path} lists no [[member]] tables", reason="bad_argument",
                                hint='each founder is a [[member]] with name = "...", role = "insurer" (endpoint optional)')
    unknown = sorted({k for e in entries for k in e} - {"name", "role", "endpoint"})
    if unknown:
        raise AnvilNetworkError(f"{path}: unknown member key(s) {', '.join(unknown)}", reason="bad_argument",
                                hint="a [[member]] has name, role and optionally endpoint")
    founders = parse_founders([f"{e.get('name', '')}:{e.get('role', '')}" for e in entries])
    endpoints = {str(e["name"]): str(e["endpoint"]) for e in entries if e.get("endpoint")}
    return founders, endpoints


def _port_of(endpoint: str) -> int:
    url = urlparse(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise AnvilNetworkError(f"endpoint {endpoint!r} is not an http(s) URL", reason="bad_argument",
                                hint="e.g. http://127.0.0.1:8701")
    return url.port or (443 if url.scheme == "https" else 80)


def init(folder: str | Path, founders: tuple[tuple[str, Role], ...], *, endpoints: dict[str, str] | None = None,
         chain_port: int | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Write the network folder; refuses one that already holds a network."""
    folder = Path(folder)
    say = progress or (lambda _: None)
    if (folder / "network.json").exists():
        raise AnvilNetworkError(f"{folder} already holds a network", reason="exists",
                                hint=f"start it with `consortium network up {folder}`, or pick a new folder")
    if not founders:
        raise AnvilNetworkError("a network needs founding members", reason="bad_argument",
                                hint="--member NAME:ROLE for each founder, or --members-file FILE.toml")
    check_member_names([n for n, _ in founders])
    endpoints = dict(endpoints or {})
    stray = sorted(set(endpoints) - {n for n, _ in founders})
    if stray:
        raise AnvilNetworkError(f"endpoint for {stray[0]!r}, which is no founder", reason="bad_argument",
                                hint="name endpoints only for listed members")
    ports = {name: _port_of(endpoints[name]) if name in endpoints else free_port() for name, _ in founders}
    endpoints = {name: endpoints.get(name, node_url("127.0.0.1", ports[name])) for name, _ in founders}
    chain_port = chain_port or free_port()
    rpc_url = f"http://127.0.0.1:{chain_port}"
    folder.mkdir(parents=True, exist_ok=True)
    passphrase = dev_passphrase(folder)
    say(f"member keys for {', '.join(n for n, _ in founders)} (scrypt-encrypted)")
    keys = {name: member_keys(folder, name, passphrase) for name, _ in founders}
    configs = write_member_configs(folder, founders, ports, rpc_url, folder / "deployment.json")
    spec = {"format": FORMAT, "engine": ENGINE, "chain_port": chain_port, "rpc_url": rpc_url, "gas": "funded",
            "deployment": str((folder / "deployment.json").resolve()),
            "members": [{"name": n, "role": r.name, "address": keys[n].address, "endpoint": endpoints[n],
                         "config": str(configs[n])} for n, r in founders]}
    write_json_atomic(folder / "network.json", spec)  # last: its presence means the folder is complete
    return spec


def load(folder: str | Path) -> dict:
    folder = Path(folder)
    if not is_anvil_network(folder):
        raise AnvilNetworkError(f"{folder} is not an anvil network folder", reason="not_a_network",
                                hint=f"create one with `consortium network init {folder} --member NAME:ROLE ...`")
    return json.loads((folder / "network.json").read_text())



def running_pid(folder: Path) -> int | None:
    run_file = folder / "run.json"
    if not run_file.exists():
        return None
    pid = json.loads(run_file.read_text()).get("anvil_pid")
    return pid if pid and alive(pid) else None


def up(folder: str | Path, *, progress: Callable[[str], None] | None = None) -> dict:
    """Start the chain detached from this process, fund the founders and deploy (once), write chain.json."""
    folder = Path(folder)
    spec = load(folder)
    say = progress or (lambda _: None)
    if running_pid(folder):
        raise AnvilNetworkError(f"the network in {folder} is already up", reason="already_running",
                                hint=f"`consortium network down {folder}` first")
    founders = tuple((m["name"], Role[m["role"]]) for m in spec["members"])
    say(f"starting anvil on port {spec['chain_port']}")
    anvil = AnvilNode(port=spec["chain_port"], state_path=folder / "anvil-state.json").start()
    try:
        dev = start_dev_consortium(folder, rpc_url=anvil.url, members=founders,
                                   endpoints={m["name"]: m["endpoint"] for m in spec["members"]}, progress=progress,
                                   reuse_deployment=True)
    except BaseException:
        anvil.stop()
        raise
    write_json_atomic(folder / "run.json", {"anvil_pid": anvil.process.pid, "rpc_url": anvil.url})
    configs = {m["name"]: Path(m["config"]) for m in spec["members"]}
    info = chain_description(folder, rpc_url=anvil.url, deployment=dev.deployment_path, chain_id=dev.deployment.chain_id,
                             founders=founders, addresses={n: k.address for n, k in dev.keys.items()}, configs=configs,
                             endpoints={m["name"]: m["endpoint"] for m in spec["members"]})
    write_json_atomic(folder / "chain.json", info)
    anvil.process = None  # detached: `network down` stops it by pid
    return info


def down(folder: str | Path, timeout: float = 20.0) -> bool:
    """Stop the chain (anvil saves its state on the way out); False when it was not running."""
    folder = Path(folder)
    load(folder)
    pid = running_pid(folder)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    (folder / "run.json").unlink(missing_ok=True)
    (folder / "chain.json").unlink(missing_ok=True)
    return pid is not None


def status(folder: str | Path) -> dict:
    from node.chain.anvil import rpc_ready

    folder = Path(folder)
    spec = load(folder)
    pid = running_pid(folder)
    out = {"engine": ENGINE, "running": bool(pid) and rpc_ready(spec["rpc_url"]), "rpc_url": spec["rpc_url"],
           "members": [{"name": m["name"], "role": m["role"], "address": m["address"], "endpoint": m["endpoint"]}
                       for m in spec["members"]]}
    if out["running"]:
        from node.chain.gateway import ChainGateway

        out["block"] = ChainGateway.connect(spec["rpc_url"]).block_number()
    return out


# ---------------------------------------------------------------------- CLI (dispatched from node/cli/network.py)

def cmd_init(args) -> int:
    from node.console import stdout_console, step_progress

    if args.members_file:
        founders, endpoints = read_members_file(args.members_file)
    elif args.member:
        founders, endpoints = parse_founders(args.member), {}
    else:
        raise AnvilNetworkError("no founding members given", reason="bad_argument",
                                hint="add --member NAME:ROLE for each founder (or --members-file FILE.toml)")
    with step_progress(stdout_console(stderr=True), "network init") as progress:
        spec = init(args.folder, founders, endpoints=endpoints, chain_port=args.chain_port, progress=progress)
    if args.json:
        print(json.dumps(spec))
        return 0
    print(f"anvil network written to {args.folder}: {len(spec['members'])} founders, chain on {spec['rpc_url']}; "
          f"start it with `consortium network up {args.folder}`")
    for m in spec["members"]:
        print(f"  {m['name']:<20} {m['role']:<10} {m['address']}  {m['config']}")
    return 0


def cmd_up(args) -> int:
    from node.console import stdout_console, step_progress

    with step_progress(stdout_console(stderr=True), "network up") as progress:
        info = up(args.folder, progress=progress)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"network up: chain {info['rpc_url']} (chain id {info['chain_id']}), deployment {info['deployment']}")
    for name, config in info["configs"].items():
        print(f"  {name:<20} {info['roles'][name]:<10} {info['members'][name]}  consortium node start --config {config}")
    print(f"stop it with `consortium network down {args.folder}`")
    return 0


def cmd_down(args) -> int:
    stopped = down(args.folder)
    print(json.dumps({"stopped": stopped}) if args.json else ("chain stopped (state kept)" if stopped else "it was not running"))
    return 0


def cmd_status(args) -> int:
    out = status(args.folder)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"anvil chain {out['rpc_url']}: " + (f"up, block {out['block']}" if out["running"] else "down"))
    for m in out["members"]:
        print(f"  {m['name']:<20} {m['role']:<10} {m['address']}  {m['endpoint']}")
    return 0
