"""Start and stop a local anvil node (shipped in node_modules) on a free loopback port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from node.chain.errors import ChainUnavailable
from node.paths import ANVIL_BINARY

# anvil's default dev accounts are funded with this many ether each (ours get funded from them).
DEV_BALANCE_ETHER = 1_000_000
# By default anvil moves the states of older blocks to disk (~/.foundry/anvil/tmp), never removed: a busy test
# chain wrote tens of gigabytes there and filled the disk; even 256 persisted states took 2-4 GB per chain.
# Keep the last 64 block states in memory and none on disk: nothing here reads state that old (logs need no
# state; calls run at the latest block, a failed transaction is replayed at its parent block).
DISK_BOUND = ("--prune-history", "64")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rpc_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout)
        return r.status_code == 200 and "result" in r.json()
    except (httpx.HTTPError, ValueError):
        return False


class AnvilNode:
    """A real anvil JSON-RPC node as a child process. Use as a context manager or call start/stop."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, block_time: float | None = None,
                 chain_id: int = 31337, binary: Path = ANVIL_BINARY, state_path: Path | None = None):
        self.host = host
        self.port = port
        self.block_time = block_time
        self.chain_id = chain_id
        self.binary = Path(binary)
        self.state_path = state_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "AnvilNode":
        if not self.binary.exists():
            raise ChainUnavailable(f"anvil is not installed at {self.binary}",
                                   hint="run scripts/setup.sh (it runs npm ci), or pass --rpc URL of a running chain")
        attempts = 1 if self.port else 3
        for _ in range(attempts):
            port = self.port or free_port(self.host)
            if self._try_start(port, timeout):
                self.port = port
                return self
        raise ChainUnavailable(f"anvil did not start: {self._tail()}", hint="check that the port is free and retry")

    def _try_start(self, port: int, timeout: float) -> bool:
        cmd = [str(self.binary), "--host", self.host, "--port", str(port), "--chain-id", str(self.chain_id),
               "--accounts", "4", "--balance", str(DEV_BALANCE_ETHER), "--silent", *DISK_BOUND]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_path:
            cmd += ["--state", str(self.state_path)]
        import tempfile

        if self._log is not None:
            self._log.close()  # the log of a failed attempt
        self._log = tempfile.TemporaryFile()
        # A new session so that a Ctrl-C aimed at the CLI is handled by the CLI, which then stops anvil.
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # exited (port taken?); the log is kept for the error message
            if rpc_ready(url, timeout=0.5):
                return True
            time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        return False

    def _tail(self) -> str:
        if self._log is None:
            return "no output"
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "AnvilNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
