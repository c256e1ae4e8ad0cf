"""Helpers to run real member-node processes on loopback for multi-node tests."""
from __future__ import annotations

from pathlib import Path

from node.devnet import NodeProcess, spawn_node, write_node_config

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSPHRASE = "test-passphrase-not-secret"

__all__ = ["NodeProcess", "ROOT", "TEST_PASSPHRASE", "start_node", "write_config"]


def write_config(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, port: int, **extra) -> Path:
    return write_node_config(home, name, keys, rpc_url, deployment, port, **extra)


def start_node(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, **extra) -> NodeProcess:
    return spawn_node(home, name, keys, rpc_url, deployment, TEST_PASSPHRASE, **extra)
