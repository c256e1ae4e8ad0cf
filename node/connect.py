"""The one way a command or a node reaches the chain and its own node.

Every CLI module and the node context connect through here, so a connection is checked the same way
everywhere (deployment matches chain and sources) and a node's own URL is built in one place.
web3 and the chain modules load inside the functions: they take about a second to import, and
`consortium --help` (which imports every CLI module) must not pay for them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.chain.deployment import Deployment
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger
    from node.client import NodeClient
    from node.keys import MemberKeys
    from node.runtime.settings import NodeSettings


def connect_chain(rpc_url: str, deployment_file: str | Path, *, confirmations: int = 0) -> tuple["ChainGateway", "Deployment"]:
    """A gateway to ``rpc_url`` with the deployment's contracts bound (refused if it does not match the chain)."""
    from node.chain.deployment import Deployment, attach
    from node.chain.gateway import ChainGateway

    deployment = Deployment.load(deployment_file)
    gateway = ChainGateway.connect(rpc_url, confirmations=confirmations)
    return attach(gateway, deployment), deployment


def reader(gateway: "ChainGateway") -> "Ledger":
    """A ledger for reads only: reads need no key, so any throwaway account will do."""
    from eth_account import Account

    from node.chain.ledger import Ledger

    return Ledger(gateway, Account.create())


def open_ledger(settings: "NodeSettings", keys: "MemberKeys | None" = None) -> tuple["Ledger", "Deployment"]:
    """The member's ledger from its settings: keys decrypted, chain connected, deployment checked."""
    from node.chain.ledger import Ledger
    from node.keys import load_member_keys, resolve_passphrase

    keys = keys or load_member_keys(settings.keys, resolve_passphrase())
    gateway, deployment = connect_chain(settings.rpc_url, settings.deployment, confirmations=settings.confirmations)
    return Ledger(gateway, keys.account), deployment


def node_url(host: str, port: int, *, tls: bool = False) -> str:
    """The base URL of a node at host:port; a wildcard bind address is reached on loopback."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def own_node_url(settings: "NodeSettings") -> str:
    """The URL this member's own node listens on (from its settings: host, port, TLS)."""
    return node_url(settings.host, settings.port, tls=bool(settings.tls_certfile))


def own_node_client(settings: "NodeSettings", *, timeout: float | None = None) -> "NodeClient":
    """A client signed by this member for its own node, as its operator."""
    from node.chain.deployment import Deployment
    from node.client import NodeClient
    from node.keys import load_member_keys, resolve_passphrase

    keys = load_member_keys(settings.keys, resolve_passphrase())
    chain_id = Deployment.load(settings.deployment).chain_id
    verify: bool | str = str(settings.tls_certfile) if settings.tls_certfile else True
    extra = {"timeout": timeout} if timeout is not None else {}
    return NodeClient(own_node_url(settings), keys.account, keys.address, chain_id, verify=verify, **extra)
