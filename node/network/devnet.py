"""A local development consortium: anvil, member keys in a folder, contracts deployed.

Used by `consortium chain up` and the demo. Keys are real encrypted keystores; the passphrase is
CONSORTIUM_PASSPHRASE when set, otherwise a random one generated once and kept (mode 0600) in the
dev folder, since a dev chain's keys are throwaway but must still never sit on disk in the clear.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
from eth_account import Account

from node.chain.anvil import AnvilNode, free_port
from node.chain.compiler import compile_contracts
from node.chain.deployment import Deployment, GenesisMember, Role, attach, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.connect import node_url
from node.errors import ConsortiumError
from node.keys import PASSPHRASE_ENV, PASSPHRASE_FILE_ENV, MemberKeys, create_member_keys, load_member_keys
from node.paths import PROJECT_ROOT

DEFAULT_MEMBERS: tuple[tuple[str, Role], ...] = (
    ("insurer-east", Role.INSURER),
    ("insurer-west", Role.INSURER),
    ("shop-platform", Role.PLATFORM),
    ("regulator", Role.REGULATOR),
    ("auditor", Role.AUDITOR),
)


MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_member_names(names: list[str]) -> None:
    """Names become folder names and registry names: refuse what would be unsafe or ambiguous."""
    for name in names:
        if not MEMBER_NAME.fullmatch(name):
            raise ConsortiumError(f"member name {name!r} is not allowed", reason="bad_argument",
                                  hint="use letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)")
    dupes = sorted({n for n in names if [m.lower() for m in names].count(n.lower()) > 1})
    if dupes:
        raise ConsortiumError(f"member name {dupes[0]!r} is given twice", reason="bad_argument",
                              hint="give each founder its own name")


def parse_founders(specs: list[str]) -> tuple[tuple[str, Role], ...]:
    """``NAME:ROLE`` pairs from the command line (role in any case: insurer, platform, tech, auditor, regulator)."""
    roles = ", ".join(r.name.lower() for r in Role if r.name != "NONE")
    founders = []
    for spec in specs:
        name, sep, role = spec.partition(":")
        key = role.strip().upper()
        if not sep or key not in Role.__members__ or key == "NONE":
            raise ConsortiumError(f"--member {spec!r} is not NAME:ROLE", reason="bad_argument",
                                  hint=f"e.g. --member acme-insurance:insurer; roles are {roles}")
        founders.append((name.strip(), Role[key]))
    check_member_names([n for n, _ in founders])
    return tuple(founders)


@dataclass
class NodeProcess:
    """A member node running as its own process (`consortium node start`) on a loopback port."""

    name: str
    url: str
    home: Path
    process: subprocess.Popen
    config: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait()


def write_node_config(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, port: int, **extra) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    values = {"name": name, "home": str(home), "keys": str(keys), "rpc_url": rpc_url, "deployment": str(deployment),
              "port": port, **extra}
    lines = [f"{k} = {json.dumps(v) if isinstance(v, (str, bool)) else v}" for k, v in values.items()]
    path = home / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def spawn_node(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, passphrase: str, *,
               port: int | None = None, timeout: float = 60.0, **extra) -> NodeProcess:
    """Start `consortium node start` for one member and wait until it answers /health."""
    port = port or free_port()
    config = write_node_config(home, name, keys, rpc_url, deployment, port, **extra)
    env = {**os.environ, "CONSORTIUM_PASSPHRASE": passphrase}
    with open(home / "node.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", "node", "start", "--config", str(config)],
                                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    tls = "tls_certfile" in extra
    url = node_url("127.0.0.1", port, tls=tls)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (home / "node.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise ConsortiumError(f"node {name} exited at start-up: {tail[0] if tail else 'no output'}",
                                  hint=f"see {home / 'node.log'}")
        try:
            verify = ssl.create_default_context(cafile=str(extra["tls_certfile"])) if tls else True
            if httpx.get(url + "/health", timeout=1, verify=verify).status_code == 200:
                return NodeProcess(name, url, home, proc, config)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise ConsortiumError(f"node {name} did not answer within {timeout:.0f} s", hint=f"see {home / 'node.log'}")


def dev_passphrase(home: Path) -> str:
    """CONSORTIUM_PASSPHRASE; else the file CONSORTIUM_PASSPHRASE_FILE names when it exists; else ``home/passphrase``,
    made on first use (mode 0600)."""
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    named = os.environ.get(PASSPHRASE_FILE_ENV)
    if named and Path(named).is_file():
        return Path(named).read_text().rstrip("\r\n")
    path = home / "passphrase"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def member_keys(home: Path, name: str, passphrase: str) -> MemberKeys:
    folder = home / "members" / name
    if (folder / "account.json").exists():
        return load_member_keys(folder, passphrase)
    return create_member_keys(folder, passphrase)


def write_member_configs(home: Path, founders: tuple[tuple[str, Role], ...], ports: dict[str, int], rpc_url: str,
                         deployment: Path) -> dict[str, Path]:
    """One node config per founder in ``home/nodes/NAME/node.toml`` (keys in ``home/members/NAME``)."""
    home = Path(home)
    return {name: write_node_config((home / "nodes" / name).resolve(), name, (home / "members" / name).resolve(), rpc_url,
                                    Path(deployment).resolve(), ports[name]).resolve()
            for name, _ in founders}


def chain_description(home: Path, *, rpc_url: str, deployment: Path, chain_id: int, founders: tuple[tuple[str, Role], ...],
                      addresses: dict[str, str], configs: dict[str, Path], endpoints: dict[str, str]) -> dict:
    """What ``home/chain.json`` holds (`consortium chain info`), for `chain up` and `network up` alike."""
    home = Path(home)
    passphrase_file = (home / "passphrase").resolve()
    return {"rpc_url": rpc_url, "deployment": str(Path(deployment).resolve()), "chain_id": chain_id,
            "members": dict(addresses), "roles": {n: r.name for n, r in founders},
            "configs": {n: str(c) for n, c in configs.items()}, "endpoints": endpoints,
            "keys": str((home / "members").resolve()),
            "passphrase_file": str(passphrase_file) if passphrase_file.exists() else None}


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


@dataclass
class DevConsortium:
    home: Path
    anvil: AnvilNode | None
    gateway: ChainGateway
    deployment: Deployment
    deployment_path: Path
    keys: dict[str, MemberKeys]
    roles: dict[str, Role]
    ledgers: dict[str, Ledger] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledgers = {name: Ledger(self.gateway, k.account) for name, k in self.keys.items()}

    def stop(self) -> None:
        if self.anvil is not None:
            self.anvil.stop()


def start_dev_consortium(home: Path, *, rpc_url: str | None = None, port: int | None = None,
                         members: tuple[tuple[str, Role], ...] = DEFAULT_MEMBERS,
                         endpoints: dict[str, str] | None = None, block_time: float | None = None,
                         progress: Callable[[str], None] | None = None, reuse_deployment: bool = False) -> DevConsortium:
    """Start anvil (unless ``rpc_url`` names a running dev chain), create keys, deploy, write the deployment file.

    ``progress`` is told each step as it starts (key generation and deployment take a few seconds).
    ``reuse_deployment``: when ``home/deployment.json`` names contracts that exist on this chain (a chain
    restarted from its saved state), keep them instead of deploying again.
    """
    home = Path(home)
    say = progress or (lambda _: None)
    check_member_names([name for name, _ in members])
    passphrase = dev_passphrase(home)
    say(f"member keys for {', '.join(name for name, _ in members)} (scrypt-encrypted)")
    keys = {name: member_keys(home, name, passphrase) for name, _ in members}
    anvil = None
    if rpc_url is None:
        say("starting anvil")
        anvil = AnvilNode(port=port, block_time=block_time).start()
        rpc_url = anvil.url
    try:
        gateway = ChainGateway.connect(rpc_url, compile_contracts())  # a deploying dev tool may compile
        existing = _deployed(gateway, home / "deployment.json") if reuse_deployment else None
        if existing is not None:
            say("contracts already deployed on this chain; reusing them")
            attach(gateway, existing)
            return DevConsortium(home, anvil, gateway, existing, home / "deployment.json", keys, dict(members))
        deployer = Account.create()  # a one-off account: deploying confers no rights
        say("funding the member accounts")
        for account in [deployer, *(k.account for k in keys.values())]:
            gateway.fund(account.address)
        endpoints = endpoints or {}
        genesis = [GenesisMember(keys[name].address, name, role, endpoints.get(name, ""), keys[name].x25519_public)
                   for name, role in members]
        say("deploying ConsortiumRegistry, DataUseAuthorization, EvidenceRegistry and StatsLedger")
        deployment = deploy_consortium(gateway, deployer, genesis)
        path = deployment.save(home / "deployment.json")
    except BaseException:
        if anvil is not None:
            anvil.stop()
        raise
    return DevConsortium(home, anvil, gateway, deployment, path, keys, dict(members))


def _deployed(gateway: ChainGateway, path: Path) -> Deployment | None:
    if not path.exists():
        return None
    deployment = Deployment.load(path)
    if deployment.chain_id != gateway.chain_id:
        return None
    if not all(gateway.w3.eth.get_code(address) for address in deployment.contracts.values()):
        return None
    return deployment
