"""A consortium on a real multi-validator chain: geth v1.13.15 Clique signers, one per member.

``init_clique`` writes a network folder: member keys (encrypted), one geth data dir per member (its
signer is the member's own account, so the registry's admissions and expulsions name signers directly),
a Clique genesis and network.json. :class:`CliqueNetwork` starts every member's geth on free loopback
ports, peers them statically, deploys the contracts compiled for the network's EVM version (``paris``:
Clique stops before Shanghai, so no PUSH0) and tells each member the URL of its own chain node.

For fault tests the members can be separate hosts: ``hosts="namespaces"`` runs each member's geth (and
its node, :meth:`CliqueNetwork.spawn_node`) in its own network namespace on a bridge (node/network/netns.py;
root and iproute2), ``hosts="proxies"`` routes every peer link through a cuttable loopback
:class:`~node.chain.links.LinkProxy`, ``hosts="auto"`` picks namespaces where the machine allows them.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from node.chain.compiler import compile_contracts
from node.chain.deployment import Deployment, GenesisMember, Role, deploy_consortium
from node.chain.errors import ChainUnavailable
from node.chain.gateway import ChainGateway
from node.chain.geth import GethNode, rpc
from node.chain.links import LinkProxy
from node.errors import ConsortiumError
from node.keys import MemberKeys, create_member_keys, load_member_keys
from node.network.devnet import DEFAULT_MEMBERS, NodeProcess, write_node_config
from node.network.netns import NamespaceHosts, namespaces_available
from node.network.pids import alive

FORMAT = 1
ENGINES = ("clique", "besu-qbft")
CLIQUE_EVM_VERSION = "paris"
FUND_WEI = 10**24  # one million ether per member account


log = logging.getLogger("consortium.network")

# A new network whose first two blocks do not come within this long has stalled (they take 2-3 s, under a loaded
# test run up to about 10); it is started again from its genesis at most this many times.
_FIRST_BLOCKS_SECONDS = 30.0
_GENESIS_RESTARTS = 2


class _StalledAtGenesis(Exception):
    """Sealing stopped before anything was on the chain (see CliqueNetwork.start)."""


class NetworkError(ConsortiumError):
    reason = "network"


@dataclass
class MemberSpec:
    name: str
    role: Role
    address: str
    validator: bool  # a genesis signer
    genesis: bool = True  # a founding member of the registry (False: admitted later by governance)


@dataclass
class NetworkSpec:
    folder: Path
    engine: str
    chain_id: int
    period: int
    evm_version: str
    confirmations: int
    members: list[MemberSpec]

    @property
    def file(self) -> Path:
        return self.folder / "network.json"

    def save(self) -> None:
        data = {"format": FORMAT, "engine": self.engine, "chain_id": self.chain_id, "period": self.period,
                "evm_version": self.evm_version, "confirmations": self.confirmations,
                "members": [{"name": m.name, "role": m.role.name, "address": m.address, "validator": m.validator,
                             "genesis": m.genesis} for m in self.members]}
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.file)

    @classmethod
    def load(cls, folder: str | Path) -> "NetworkSpec":
        folder = Path(folder)
        path = folder / "network.json"
        if not path.exists():
            raise NetworkError(f"{folder} is not a network folder (no network.json)",
                               hint=f"create one with `consortium network init {folder} --engine clique`")
        data = json.loads(path.read_text())
        return cls(folder, data["engine"], int(data["chain_id"]), int(data["period"]), data["evm_version"],
                   int(data["confirmations"]),
                   [MemberSpec(m["name"], Role[m["role"]], m["address"], bool(m["validator"]), bool(m.get("genesis", True)))
                    for m in data["members"]])

    def member(self, name: str) -> MemberSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise NetworkError(f"no member {name!r} in {self.folder}", hint="see `consortium network status`")

    def keys_dir(self, name: str) -> Path:
        return self.folder / "members" / name

    def geth_dir(self, name: str) -> Path:
        return self.folder / "geth" / name

    def validator_accounts(self) -> list[str]:
        """Accounts that run a sealing geth: the genesis signers and the candidates set up to join as signers."""
        return [m.address for m in self.members if m.validator or not m.genesis]


def clique_extradata(signers: list[str]) -> str:
    """32 zero bytes (vanity) || signer addresses sorted ascending || 65 zero bytes (no seal in genesis)."""
    ordered = sorted(bytes.fromhex(Web3.to_checksum_address(a)[2:]) for a in signers)
    return "0x" + (b"\x00" * 32 + b"".join(ordered) + b"\x00" * 65).hex()


def clique_genesis(chain_id: int, period: int, signers: list[str], funded: list[str]) -> dict:
    # No shanghaiTime/cancunTime/terminal difficulty: geth 1.13.15 stops sealing Clique blocks past them.
    forks = {f"{name}Block": 0 for name in ("homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople",
                                            "petersburg", "istanbul", "berlin", "london")}
    return {
        "config": {"chainId": chain_id, **forks, "clique": {"period": period, "epoch": 30000}},
        "difficulty": "0x1", "gasLimit": hex(60_000_000), "extradata": clique_extradata(signers),
        "alloc": {Web3.to_checksum_address(a)[2:].lower(): {"balance": hex(FUND_WEI)} for a in funded},
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def network_passphrase(folder: Path) -> str:
    """CONSORTIUM_PASSPHRASE when set, else one generated at init and kept mode 0600 in the folder."""
    if os.environ.get("CONSORTIUM_PASSPHRASE"):
        return os.environ["CONSORTIUM_PASSPHRASE"]
    path = folder / "passphrase"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def init_clique(folder: str | Path, *, members: tuple[tuple[str, Role], ...] = DEFAULT_MEMBERS, validators: int = 4,
                period: int = 1, chain_id: int | None = None, confirmations: int = 2,
                candidates: tuple[tuple[str, Role], ...] = (), scrypt_n: int | None = None) -> NetworkSpec:
    """Write a Clique network folder; the first ``validators`` members are the genesis signers.

    ``candidates`` get keys and a geth node but are neither founding members nor signers: governance
    admits them later (and their signer with them). Refuses a folder that already holds a network.
    """
    folder = Path(folder)
    if (folder / "network.json").exists():
        raise NetworkError(f"{folder} already holds a network", hint="pick a new folder, or `consortium network up` it")
    if not 1 <= validators <= len(members):
        raise NetworkError(f"validators must be between 1 and {len(members)}", hint="pass --validators N")
    if period < 1:
        raise NetworkError("the block period must be at least 1 s", hint="pass --period 1 or more")
    folder.mkdir(parents=True, exist_ok=True)
    passphrase = network_passphrase(folder)
    chain_id = chain_id or 20_000 + secrets.randbelow(10_000)
    spec_members: list[MemberSpec] = []
    kw = {"scrypt_n": scrypt_n} if scrypt_n else {}
    for i, (name, role) in enumerate((*members, *candidates)):
        keys = create_member_keys(folder / "members" / name, passphrase, **kw)
        spec_members.append(MemberSpec(name, role, keys.address, i < validators, i < len(members)))
        gdir = folder / "geth" / name
        (gdir / "keystore").mkdir(parents=True, exist_ok=True)
        # geth reads the member's own encrypted keystore: its signer is the member's account.
        shutil.copyfile(folder / "members" / name / "account.json", gdir / "keystore" / "account.json")
        _write_private(gdir / "password", passphrase + "\n")
        _write_private(gdir / "nodekey", secrets.token_bytes(32).hex())
    genesis = clique_genesis(chain_id, period, [m.address for m in spec_members if m.validator],
                             [m.address for m in spec_members])
    (folder / "genesis.json").write_text(json.dumps(genesis, indent=2))
    spec = NetworkSpec(folder, "clique", chain_id, period, CLIQUE_EVM_VERSION, confirmations, spec_members)
    spec.save()
    return spec


HOST_MODES = ("local", "proxies", "namespaces", "auto")
NODE_PORT_IN_NAMESPACE = 8700
GETH_PORTS_IN_NAMESPACE = {"http_port": 8545, "p2p_port": 30303, "authrpc_port": 8551}


@dataclass
class CliqueNetwork:
    """The running network: one geth per member, on one loopback (``local``), behind cuttable loopback proxies
    (``proxies``) or each in its own network namespace (``namespaces``)."""

    spec: NetworkSpec
    hosts: str = "local"
    nodes: dict[str, GethNode] = field(default_factory=dict)
    links: dict[tuple[str, str], LinkProxy] = field(default_factory=dict)
    netns: NamespaceHosts | None = None
    deployment: Deployment | None = None
    node_ports: dict[str, int] = field(default_factory=dict)
    _keys: dict[str, MemberKeys] = field(default_factory=dict)

    @property
    def proxied(self) -> bool:
        return self.hosts == "proxies"

    @classmethod
    def open(cls, folder: str | Path, *, hosts: str = "local") -> "CliqueNetwork":
        spec = NetworkSpec.load(folder)
        if spec.engine != "clique":
            raise NetworkError(f"{folder} is a {spec.engine} kit, which this machine cannot run",
                               hint="run it on the members' hosts (see the README), or init a clique network")
        if hosts not in HOST_MODES:
            raise NetworkError(f"hosts must be one of {', '.join(HOST_MODES)}", hint="pass hosts='auto'")
        if hosts == "auto":
            hosts = "namespaces" if namespaces_available()[0] else "proxies"
        net = cls(spec, hosts)
        for m in spec.members:
            gdir = spec.geth_dir(m.name)
            net.nodes[m.name] = GethNode(m.name, gdir, m.address, gdir / "password", (gdir / "nodekey").read_text().strip())
        return net

    @property
    def partition_method(self) -> str:
        return {"namespaces": NamespaceHosts.method, "proxies": "loopback TCP proxies between the geth nodes "
                "(no network namespaces)", "local": "none (one loopback, no faults)"}[self.hosts]

    def keys(self, name: str) -> MemberKeys:
        if name not in self._keys:
            self._keys[name] = load_member_keys(self.spec.keys_dir(name), network_passphrase(self.spec.folder))
        return self._keys[name]

    def url(self, name: str) -> str:
        return self.nodes[name].url

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, timeout: float = 180.0) -> "CliqueNetwork":
        """Start every member's geth, peer them, start sealing together and wait for the first blocks.

        A new network (no contracts deployed, no transaction in any signer's chain) whose sealing stalls at start-up
        is started again from its genesis, at most _GENESIS_RESTARTS times: seen under loaded runs, the signers' first
        blocks forked so that no signer could extend any head (Clique's recency rule) and the chain stood at block 1
        (once, in a benchmark, past it on some signer) for good. Nothing is lost: there is nothing on that chain yet."""
        for attempt in range(_GENESIS_RESTARTS + 1):
            try:
                return self._start(timeout, new_network_stall=None if attempt == _GENESIS_RESTARTS else _FIRST_BLOCKS_SECONDS)
            except _StalledAtGenesis as stalled:
                log.warning("sealing stalled at start-up (%s); starting the chain again from its genesis", stalled)
                for node in self.nodes.values():
                    shutil.rmtree(node.datadir / "geth" / "chaindata", ignore_errors=True)
                    shutil.rmtree(node.datadir / "geth" / "lightchaindata", ignore_errors=True)
        raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises

    def _start(self, timeout: float, new_network_stall: float | None) -> "CliqueNetwork":
        from node.chain.anvil import free_port

        if self.hosts == "namespaces" and self.netns is None:
            self.netns = NamespaceHosts(list(self.nodes)).create()
            for name, node in self.nodes.items():
                host = self.netns.hosts[name]
                node.prefix, node.rpc_host, node.p2p_host, node.bind_host = self.netns.prefix(name), host.lan_ip, host.wan_ip, "0.0.0.0"
                for attr, port in GETH_PORTS_IN_NAMESPACE.items():
                    setattr(node, attr, port)
        try:
            for node in self.nodes.values():
                node.init(self.spec.folder / "genesis.json")
                node.p2p_port = node.p2p_port or free_port()
            names = list(self.nodes)
            for a in names:
                statics = []
                for b in names:
                    if a == b:
                        continue
                    if self.proxied:
                        if (a, b) not in self.links:
                            self.links[(a, b)] = LinkProxy(self.nodes[b].p2p_port)
                        statics.append(self.nodes[b].enode_at(self.links[(a, b)].port, "127.0.0.1"))
                    else:
                        statics.append(self.nodes[b].enode)
                self.nodes[a].static_nodes = statics
            for node in self.nodes.values():
                if not node.running:
                    node.seal_at_start = False
                    node.start(self.spec.chain_id)
            self.wait_connected(timeout=timeout)
            self._start_sealing(timeout)
            fresh = new_network_stall is not None and not (self.spec.folder / "deployment.json").exists()
            try:
                self.wait_blocks(2, timeout=min(timeout, new_network_stall) if fresh else timeout)
            except ChainUnavailable as exc:
                # a fork stall can leave heads a few blocks up; what makes a wipe safe is that no chain holds anything
                if fresh and not any(n.transactions() for n in self.live()):
                    raise _StalledAtGenesis(exc.one_line()) from None
                raise
        except BaseException:
            self.stop()
            raise
        return self

    def _start_sealing(self, timeout: float) -> None:
        """Every signer starts sealing at once, once all of them have peered.

        A signer sealing before it has peers builds blocks of its own from the shared head (due at once:
        the head is in the past); with 4 signers Clique's recency rule (no signer seals twice within 3
        blocks) can then leave every fork's head with no signer allowed to extend it, and the network
        stalls for good. Peered signers that seal the same height at once see each other's blocks within
        milliseconds and settle on the heavier (in-turn) one. A geth that does not seal also drops
        propagated blocks until it syncs, so sealing starts on all of them together (in parallel).
        """
        from concurrent.futures import ThreadPoolExecutor

        sealers = [n for n in self.live() if n.mine]
        with ThreadPoolExecutor(max(len(sealers), 1)) as pool:
            list(pool.map(lambda n: n.start_sealing(), sealers))

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for link in self.links.values():
            link.close()
        self.links.clear()
        if self.netns is not None:
            self.netns.remove()
            self.netns = None

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Start a stopped member's geth again; it seals once it has peered and caught up with the others'
        head (sealing on its stale head first would fork the chain at that height)."""
        node = self.nodes[name]
        node.seal_at_start = False
        node.start(self.spec.chain_id, timeout=timeout)
        others = [n for n in self.live() if n is not node]
        deadline = time.monotonic() + timeout
        while others and time.monotonic() < deadline:
            try:
                if node.peers() >= 1 and node.head() >= min(n.head() for n in others) - 1:
                    break
            except ChainUnavailable:
                pass
            time.sleep(0.2)
        if node.mine:
            node.start_sealing()

    # ------------------------------------------------------------------ faults (separate hosts)

    def _need_hosts(self) -> None:
        if self.hosts not in ("proxies", "namespaces"):
            raise NetworkError("partitions need separate hosts", hint="open(..., hosts='auto')")

    def _cut(self, a: str, b: str, paused: bool) -> None:
        for key in ((a, b), (b, a)):
            (self.links[key].pause if paused else self.links[key].resume)()

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between members of different groups (members in no group keep their links)."""
        self._need_hosts()
        if self.netns is not None:
            self.netns.partition(*groups)
            return
        where = {name: i for i, group in enumerate(groups) for name in group}
        for a, b in self.links:
            if a in where and b in where and where[a] != where[b]:
                self._cut(a, b, True)

    def isolate(self, name: str) -> None:
        """Cut ``name``'s host off from every other member (its own side still reaches it)."""
        self._need_hosts()
        if self.netns is not None:
            self.netns.cut(name)
            return
        for other in self.nodes:
            if other != name:
                self._cut(name, other, True)

    def heal(self) -> None:
        if self.netns is not None:
            self.netns.heal()
        for link in self.links.values():
            link.resume()

    # ------------------------------------------------------------------ member nodes (their own chain node each)

    def node_port(self, name: str) -> int:
        from node.chain.anvil import free_port

        if name not in self.node_ports:
            self.node_ports[name] = NODE_PORT_IN_NAMESPACE if self.netns is not None else free_port()
        return self.node_ports[name]

    def endpoint(self, name: str) -> str:
        """Where the other members reach ``name``'s node (its registry endpoint)."""
        host = self.netns.hosts[name].wan_ip if self.netns is not None else "127.0.0.1"
        return f"http://{host}:{self.node_port(name)}"

    def local_url(self, name: str) -> str:
        """Where this process (the member's own side) reaches ``name``'s node."""
        host = self.netns.hosts[name].lan_ip if self.netns is not None else "127.0.0.1"
        return f"http://{host}:{self.node_port(name)}"

    def own_rpc_url(self, name: str) -> str:
        """``name``'s geth as its own node sees it: on the same host."""
        return f"http://127.0.0.1:{self.nodes[name].http_port}"

    def spawn_node(self, name: str, home: Path, *, timeout: float = 90.0, **settings) -> NodeProcess:
        """Start ``name``'s consortium node on its host, connected to its own geth; wait until it answers."""
        import subprocess
        import sys

        import httpx

        from node.paths import PROJECT_ROOT

        host = "0.0.0.0" if self.netns is not None else "127.0.0.1"  # inside its namespace: its own addresses
        settings.setdefault("confirmations", self.spec.confirmations)
        config = write_node_config(home, name, self.spec.keys_dir(name), self.own_rpc_url(name),
                                   self.spec.folder / "deployment.json", self.node_port(name), host=host, **settings)
        prefix = self.netns.prefix(name) if self.netns is not None else []
        env = {**os.environ, "CONSORTIUM_PASSPHRASE": network_passphrase(self.spec.folder)}
        with open(home / "node.log", "ab") as log:
            proc = subprocess.Popen([*prefix, sys.executable, "-m", "node.cli", "node", "start", "--config", str(config)],
                                    cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = self.local_url(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (home / "node.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise NetworkError(f"node {name} exited at start-up: {tail[0] if tail else 'no output'}",
                                   hint=f"see {home / 'node.log'}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return NodeProcess(name, url, home, proc, config)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        proc.kill()
        proc.wait()
        raise NetworkError(f"node {name} did not answer within {timeout:.0f} s", hint=f"see {home / 'node.log'}")

    # ------------------------------------------------------------------ waiting and views

    def live(self) -> list[GethNode]:
        return [n for n in self.nodes.values() if n.running]

    def wait_connected(self, timeout: float = 120.0, names: list[str] | None = None) -> None:
        nodes = [self.nodes[n] for n in names] if names else self.live()
        want = len(nodes) - 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n.peers() >= want for n in nodes):
                return
            time.sleep(0.3)
        raise ChainUnavailable(f"geth nodes did not all peer within {timeout:.0f} s: "
                               + ", ".join(f"{n.name}={n.peers()}" for n in nodes), hint="see the geth.log files")

    def wait_blocks(self, count: int, *, timeout: float = 120.0, node: str | None = None) -> int:
        target = self.nodes[node] if node else self.live()[0]
        start = target.head()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head = target.head()
            if head >= start + count:
                return head
            time.sleep(0.2)
        raise ChainUnavailable(f"no {count} new blocks within {timeout:.0f} s (head {start}); sealing stopped",
                               hint=f"see {target.log_path}")

    def wait_same_head(self, timeout: float = 120.0, names: list[str] | None = None) -> str:
        """Wait until the given nodes agree on a block at a common height; returns its hash."""
        nodes = [self.nodes[n] for n in names] if names else self.live()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            height = min(n.head() for n in nodes)
            hashes = {rpc(n.url, "eth_getBlockByNumber", [hex(height), False])["hash"] for n in nodes}
            if len(hashes) == 1:
                return hashes.pop()
            time.sleep(0.3)
        raise ChainUnavailable(f"nodes did not converge within {timeout:.0f} s", hint="see the geth.log files")

    def status(self) -> list[dict]:
        out = []
        for name, node in self.nodes.items():
            row = {"name": name, "signer": node.signer, "running": node.running, "url": node.url if node.running else None}
            if node.running:
                try:
                    head = node.head()
                    row.update(head=head, peers=node.peers(), signers=node.signers(),
                               sealed_latest=node.block_signer(head) if head else None)
                except (ChainUnavailable, ValueError) as exc:
                    row["error"] = str(exc)
            out.append(row)
        return out

    # ------------------------------------------------------------------ contracts

    def gateway(self, name: str, **kw) -> ChainGateway:
        """A gateway to ``name``'s own chain node, with the network's confirmations."""
        kw.setdefault("confirmations", self.spec.confirmations)
        return ChainGateway.connect(self.url(name), **kw)

    def deploy(self, *, endpoints: dict[str, str] | None = None, artifacts=None) -> Deployment:
        """Deploy the contracts (for the network's EVM version) from the first member's account."""
        endpoints = endpoints or {}
        founders = [m for m in self.spec.members if m.genesis]
        # a deploying dev tool may compile (a node only loads the build)
        artifacts = artifacts if artifacts is not None else compile_contracts(evm_version=self.spec.evm_version)
        # Each step waits only for its block; the whole deployment then waits for its confirmations once and is
        # checked on chain (a reorg that dropped a contract fails here), instead of ~5 steps waiting 3 blocks each.
        gateway = self.gateway(founders[0].name, artifacts=artifacts, confirmations=0)
        genesis = [GenesisMember(m.address, m.name, m.role, endpoints.get(m.name, ""), self.keys(m.name).x25519_public)
                   for m in founders]
        self.deployment = deploy_consortium(gateway, self.keys(founders[0].name).account, genesis,
                                            evm_version=self.spec.evm_version)
        self.wait_blocks(self.spec.confirmations, node=founders[0].name)
        missing = [n for n, a in self.deployment.contracts.items() if gateway.w3.eth.get_code(a) in (b"", None)]
        if missing:
            raise NetworkError(f"contracts {', '.join(missing)} are not on chain after their confirmations (a reorg?)",
                               hint="deploy again")
        self.deployment.save(self.spec.folder / "deployment.json")
        return self.deployment


# ---------------------------------------------------------------------- the detached CLI network

def up(folder: str | Path, *, timeout: float = 180.0) -> dict:
    """Start every member's geth detached from this process, deploy once, record pids in run.json."""
    folder = Path(folder)
    run_file = folder / "run.json"
    if run_file.exists() and any(alive(pid) for pid in json.loads(run_file.read_text())["pids"].values()):
        raise NetworkError(f"the network in {folder} is already up", hint=f"`consortium network down {folder}` first")
    net = CliqueNetwork.open(folder)
    net.start(timeout=timeout)
    try:
        path = folder / "deployment.json"
        deployment = Deployment.load(path) if path.exists() else net.deploy()
    except BaseException:
        net.stop()
        raise
    info = {"pids": {n: node.process.pid for n, node in net.nodes.items()},
            "rpc": {n: node.url for n, node in net.nodes.items()}, "deployment": str(path.resolve()),
            "chain_id": net.spec.chain_id, "evm_version": deployment.evm_version}
    run_file.write_text(json.dumps(info, indent=2))
    for node in net.nodes.values():
        node.process = None  # detached: `network down` stops them by pid
    return info



def down(folder: str | Path, timeout: float = 30.0) -> list[str]:
    folder = Path(folder)
    run_file = folder / "run.json"
    if not run_file.exists():
        raise NetworkError(f"no running network recorded in {folder}", hint=f"start it with `consortium network up {folder}`")
    pids = json.loads(run_file.read_text())["pids"]
    for pid in pids.values():
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    run_file.unlink()
    return list(pids)


def status(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    spec = NetworkSpec.load(folder)
    run_file = folder / "run.json"
    running = json.loads(run_file.read_text()) if run_file.exists() else {"pids": {}, "rpc": {}}
    out = []
    for m in spec.members:
        url = running["rpc"].get(m.name)
        row = {"name": m.name, "signer": m.address, "validator_at_genesis": m.validator,
               "running": bool(url) and alive(running["pids"][m.name]), "url": url}
        if row["running"]:
            try:
                head = int(rpc(url, "eth_blockNumber"), 16)
                row.update(head=head, peers=int(rpc(url, "net_peerCount"), 16), signers=rpc(url, "clique_getSigners"),
                           sealed_latest=rpc(url, "clique_getSigner", [hex(head)]) if head else None)
            except (ChainUnavailable, ValueError) as exc:
                row["error"] = str(exc)
        out.append(row)
    return out
