"""Run geth v1.13.15 Clique signers as child processes on free loopback ports (like node/chain/anvil.py).

The binary is built by scripts/geth/build.sh (run by scripts/setup.sh) into .cache/geth/bin/geth, or
named by CONSORTIUM_GETH. geth is started without --pprof: a build made with -checklinkname=0 must never
serve it. Peers are static (the config file's [Node.P2P] StaticNodes; geth 1.13.15 ignores
static-nodes.json), discovery is off.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from node.chain.anvil import free_port
from node.chain.errors import ChainUnavailable
from node.paths import PROJECT_ROOT

GETH_VERSION = "1.13.15"
GETH_ENV = "CONSORTIUM_GETH"


def geth_binary() -> Path:
    named = os.environ.get(GETH_ENV)
    path = Path(named) if named else PROJECT_ROOT / ".cache" / "geth" / "bin" / "geth"
    if not path.exists():
        raise ChainUnavailable(f"geth {GETH_VERSION} is not built ({path} is missing)",
                               hint="run bash scripts/setup.sh (it builds geth with Go), or set CONSORTIUM_GETH")
    return path


def rpc(url: str, method: str, params: list | None = None, timeout: float = 5.0):
    """One JSON-RPC call; ChainUnavailable if the node does not answer, ValueError on an RPC error."""
    try:
        answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                            timeout=timeout).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ChainUnavailable(f"{method} at {url} failed: {type(exc).__name__}", hint="is the chain node running?") from None
    if answer.get("error"):
        raise ValueError(f"{method}: {answer['error'].get('message', answer['error'])}")
    return answer["result"]


def enode_id(nodekey_hex: str) -> str:
    """The node id (uncompressed public key, 64 bytes hex) of a devp2p node key."""
    from eth_keys import keys

    return keys.PrivateKey(bytes.fromhex(nodekey_hex)).public_key.to_hex()[2:]


@dataclass
class GethNode:
    """One member's geth: its data dir (initialised from the genesis), signer account and ports."""

    name: str
    datadir: Path
    signer: str  # checksummed address of the account geth unlocks and seals with
    password_file: Path
    nodekey_hex: str
    http_port: int = 0
    p2p_port: int = 0
    authrpc_port: int = 0
    static_nodes: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    mine: bool = True
    # False: unlocked but not sealing until start_sealing() (miner_start). Signers that seal before they
    # have peered each build their own blocks 1..n, and Clique's recency rule can then stall every fork.
    seal_at_start: bool = True
    # On a host of its own (node/network/netns.py): the command prefix that enters its namespace, the address this
    # process reaches its RPC at, the address its peers dial, and what its RPC binds to inside the namespace.
    prefix: list[str] = field(default_factory=list)
    rpc_host: str = "127.0.0.1"
    p2p_host: str = "127.0.0.1"
    bind_host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.rpc_host}:{self.http_port}"

    @property
    def enode(self) -> str:
        return self.enode_at(self.p2p_port)

    def enode_at(self, port: int, host: str | None = None) -> str:
        return f"enode://{enode_id(self.nodekey_hex)}@{host or self.p2p_host}:{port}"

    @property
    def log_path(self) -> Path:
        return self.datadir / "geth.log"

    def init(self, genesis: Path) -> None:
        if (self.datadir / "geth" / "chaindata").exists():
            return
        out = subprocess.run([str(geth_binary()), "--datadir", str(self.datadir), "init", str(genesis)],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ChainUnavailable(f"geth init failed for {self.name}: {(out.stderr or out.stdout).strip().splitlines()[-1:]}",
                                   hint=f"check {genesis}")

    def write_config(self) -> Path:
        path = self.datadir / "config.toml"
        nodes = ", ".join(json.dumps(n) for n in self.static_nodes)
        path.write_text(f"[Node.P2P]\nStaticNodes = [{nodes}]\nTrustedNodes = [{nodes}]\n")
        return path

    def command(self, chain_id: int) -> list[str]:
        cmd = [*self.prefix, str(geth_binary()), "--config", str(self.datadir / "config.toml"), "--datadir", str(self.datadir),
               "--networkid", str(chain_id), "--port", str(self.p2p_port), "--nodiscover", "--maxpeers", "50",
               "--nodekeyhex", self.nodekey_hex, "--ipcdisable", "--syncmode", "full", "--gcmode", "archive",
               "--http", "--http.addr", self.bind_host, "--http.port", str(self.http_port),
               "--http.api", "eth,net,web3,clique,txpool,admin,miner", "--authrpc.port", str(self.authrpc_port),
               "--txpool.accountslots", "4096", "--txpool.accountqueue", "4096", "--txpool.globalslots", "65536",
               "--txpool.globalqueue", "65536", "--rpc.gascap", "0", "--verbosity", "3"]
        if self.mine:
            cmd += ["--miner.etherbase", self.signer, "--unlock", self.signer,
                    "--password", str(self.password_file), "--allow-insecure-unlock"]
            if self.seal_at_start:
                cmd.append("--mine")
        return cmd

    def start(self, chain_id: int, timeout: float = 120.0) -> "GethNode":
        for attr in ("http_port", "p2p_port", "authrpc_port"):
            if not getattr(self, attr):
                setattr(self, attr, free_port())
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(chain_id), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChainUnavailable(f"geth {self.name} exited at start-up: {self.tail()}", hint=f"see {self.log_path}")
            try:
                rpc(self.url, "eth_blockNumber", timeout=1.0)
                return self
            except ChainUnavailable:
                time.sleep(0.2)
        self.kill()
        raise ChainUnavailable(f"geth {self.name} did not answer within {timeout:.0f} s", hint=f"see {self.log_path}")

    def tail(self, lines: int = 1) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return " | ".join(text[-lines:]) if text else "no output"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: a host that dies without shutting down."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    # ------------------------------------------------------------------ views

    def head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber"), 16)

    def peers(self) -> int:
        return int(rpc(self.url, "net_peerCount"), 16)

    def transactions(self) -> int:
        """Transactions in this node's chain, genesis to head (a look at every block: for short chains)."""
        return sum(int(rpc(self.url, "eth_getBlockTransactionCountByNumber", [hex(b)]), 16)
                   for b in range(1, self.head() + 1))

    def signers(self) -> list[str]:
        return rpc(self.url, "clique_getSigners")

    def start_sealing(self) -> None:
        rpc(self.url, "miner_start")

    def propose(self, address: str, authorize: bool) -> None:
        rpc(self.url, "clique_propose", [address, authorize])

    def discard(self, address: str) -> None:
        rpc(self.url, "clique_discard", [address])

    def block_signer(self, number: int | str = "latest") -> str:
        tag = hex(number) if isinstance(number, int) else number
        return rpc(self.url, "clique_getSigner", [tag])
