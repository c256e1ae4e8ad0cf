"""Helpers to run real member-node processes on loopback for multi-node tests."""
from __future__ import annotations

from pathlib import Path

from eth_account import Account

from node.chain.deployment import GenesisMember, deploy_consortium
from node.keys import create_member_keys
from node.network.devnet import NodeProcess, spawn_node, write_node_config

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSPHRASE = "test-passphrase-not-secret"

__all__ = ["NodeProcess", "ROOT", "TEST_PASSPHRASE", "deploy_members", "start_node", "write_config"]


def write_config(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, port: int, **extra) -> Path:
    return write_node_config(home, name, keys, rpc_url, deployment, port, **extra)


def start_node(home: Path, name: str, keys: Path, rpc_url: str, deployment: Path, **extra) -> NodeProcess:
    return spawn_node(home, name, keys, rpc_url, deployment, TEST_PASSPHRASE, **extra)


def deploy_members(gateway, base: Path, roles: dict, endpoints: dict | None = None) -> tuple[dict, object, Path]:
    """Keys for each member (cheap scrypt, still encrypted) in base/keys/NAME, funded, and a fresh deployment with
    them as the founders (``endpoints``: NAME -> node URL on the registry); returns (keys by name, the deployment,
    its file)."""
    keys = {n: create_member_keys(base / "keys" / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in roles}
    deployer = Account.create()
    for account in [deployer, *(k.account for k in keys.values())]:
        gateway.fund(account.address)
    endpoints = endpoints or {}
    deployment = deploy_consortium(gateway, deployer, [GenesisMember(keys[n].address, n, r, endpoint=endpoints.get(n, ""))
                                                       for n, r in roles.items()])
    return keys, deployment, deployment.save(base / "deployment.json")
