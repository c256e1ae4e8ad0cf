"""Helpers to run real member-node processes on loopback for multi-node tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from node.chain.anvil import free_port

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSPHRASE = "test-passphrase-not-secret"


@dataclass
class NodeProcess:
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


def write_config(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, port: int, **extra) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    lines = [f'name = "{name}"', f'home = "{home}"', f'keys = "{keys}"', f'rpc_url = "{rpc_url}"',
             f'deployment = "{deployment}"', f"port = {port}"]
    lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in extra.items()]
    path = home / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_node(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, **extra) -> NodeProcess:
    port = free_port()
    config = write_config(home, name, keys, rpc_url, deployment, port, **extra)
    env = {**os.environ, "CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE}
    log = open(home / "node.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", "node", "start", "--config", str(config)], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node {name} exited: {(home / 'node.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return NodeProcess(name, url, home, proc, config)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"node {name} did not become healthy: {(home / 'node.log').read_text()[-2000:]}")
