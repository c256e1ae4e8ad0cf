"""What every command group shares: its options, the one way a command connects, and how it prints.

A command names its chain and key in one of two ways: ``--config NODE.toml`` (the node's settings: chain,
confirmations, keys) or ``--rpc`` and ``--deployment`` (plus ``--keys`` when it signs). :func:`connect`
serves both, so every command checks its deployment against the chain and asks for a passphrase the same way.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from node.connect import connect_chain, open_ledger, own_node_client, reader
from node.errors import ConsortiumError, parse_problem

if TYPE_CHECKING:
    from node.chain.deployment import Deployment
    from node.chain.ledger import Ledger
    from node.client import NodeClient
    from node.members import MemberDirectory
    from node.runtime.settings import NodeSettings


# ---------------------------------------------------------------------------------------------- options

def config_option(p: argparse.ArgumentParser, help_text: str = "the node's TOML settings (keys, rpc_url, deployment)") -> None:
    p.add_argument("--config", required=True, type=Path, help=help_text)


def json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def chain_options(p: argparse.ArgumentParser, *, keys: bool = False) -> None:
    """--rpc and --deployment (and --keys for a command that signs), for commands run without a node's settings."""
    p.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    p.add_argument("--deployment", required=True, help="deployment file (JSON)")
    if keys:
        p.add_argument("--keys", type=Path, required=True, help="member key folder (passphrase from CONSORTIUM_PASSPHRASE)")
    json_option(p)


def command(group, name: str, help_text: str, func: Callable[[argparse.Namespace], int], *,
            config: bool = True) -> argparse.ArgumentParser:
    """A subcommand with --json (and --config unless ``config=False``) that runs ``func``."""
    p = group.add_parser(name, help=help_text)
    if config:
        config_option(p)
    json_option(p)
    p.set_defaults(func=func)
    return p


def chain_command(group, name: str, help_text: str, func: Callable[[argparse.Namespace], int], *,
                  keys: bool = False) -> argparse.ArgumentParser:
    """A subcommand run without a node's settings: --rpc, --deployment (--keys when it signs) and --json."""
    p = group.add_parser(name, help=help_text)
    chain_options(p, keys=keys)
    p.set_defaults(func=func)
    return p


# ---------------------------------------------------------------------------------------------- connecting

def settings(args: argparse.Namespace) -> "NodeSettings":
    from node.runtime.settings import load_settings

    return load_settings(args.config)


def connect(args: argparse.Namespace, *, signed: bool = False) -> tuple["Ledger", "Deployment"]:
    """The ledger of the chain the command names, and the deployment checked against it.

    ``signed``: the member's key signs (its passphrase is asked for); otherwise a read-only ledger, which
    needs no key and no passphrase.
    """
    if getattr(args, "config", None):
        node_settings = settings(args)
        if signed:
            return open_ledger(node_settings)
        gateway, deployment = connect_chain(node_settings.rpc_url, node_settings.deployment,
                                            confirmations=node_settings.confirmations)
        return reader(gateway), deployment
    gateway, deployment = connect_chain(args.rpc, args.deployment)
    if not signed:
        return reader(gateway), deployment
    if not getattr(args, "keys", None):
        raise ConsortiumError("this command is a transaction: it needs the member's keys", reason="bad_argument",
                              hint="pass --keys FOLDER (passphrase from CONSORTIUM_PASSPHRASE[_FILE])")
    from node.chain.ledger import Ledger
    from node.keys import load_member_keys, resolve_passphrase

    return Ledger(gateway, load_member_keys(args.keys, resolve_passphrase()).account), deployment


def directory(ledger: "Ledger") -> "MemberDirectory":
    """Member names from the registry (names are accepted wherever an address is)."""
    from node.members import MemberDirectory

    return MemberDirectory(ledger.members())


def own_node(args: argparse.Namespace, *, timeout: float | None = None) -> "NodeClient":
    """A client for this member's own node, signed with its key (the node answers its operator)."""
    return own_node_client(settings(args), timeout=timeout)


def node_answer(response, what: str) -> dict:
    """The JSON body of a 2xx answer; otherwise one line with the node's machine-readable reason."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            return {}
    reason, message = parse_problem(response.content)
    raise ConsortiumError(f"{what}: HTTP {response.status_code} {reason}: {message}", reason=reason,
                          hint="see the node's log" if response.status_code >= 500 else None)


def call_node(client: "NodeClient", method: str, path: str, body=None, *, what: str, **kwargs) -> dict:
    """One request to a node and its answer (:func:`node_answer`); a node that does not answer is one line too."""
    import httpx

    try:
        return node_answer(client.request(method, path, body, **kwargs), what)
    except httpx.HTTPError as exc:
        raise ConsortiumError(f"cannot reach the node at {client.base_url}: {type(exc).__name__}", reason="unreachable",
                              hint="check that it runs (`consortium node start --config NODE.toml`)") from None


# ---------------------------------------------------------------------------------------------- printing

def emit(args: argparse.Namespace, doc, text: str) -> int:
    """``doc`` as one JSON line with --json, else ``text``; bytes print as 0x hex."""
    if getattr(args, "json", False):
        print(json.dumps(doc, default=lambda v: "0x" + v.hex() if isinstance(v, bytes) else str(v)))
    else:
        print(text)
    return 0


def print_table(title: str, columns: Iterable[str], rows: Iterable[Iterable], *, caption: str | None = None,
                right: Iterable[str] = (), no_wrap: bool = False) -> None:
    """A table on stdout, whole when piped (node/console.py); ``right``: the columns aligned right."""
    from rich.table import Table

    from node.console import stdout_console

    table = Table(title=title, caption=caption)
    right = set(right)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", no_wrap=no_wrap)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    stdout_console().print(table)
