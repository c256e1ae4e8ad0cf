"""The `consortium` command line: the root parser, every command group, and how a failure is reported.

Every failure a user can act on prints one line (what is wrong; what to do) and exits non-zero;
the traceback is shown only with --debug.
"""
from __future__ import annotations

import argparse
import sys

from node.cli import audit, chain, claims, data, evidence, governance, keys, network, pool, settle, stats
from node.cli import node as node_group
from node.errors import ConsortiumError

# Every command group, each in its own module with register(subparsers): `consortium --help` lists them in this order.
COMMAND_GROUPS = (chain, keys, governance, node_group, data, evidence, claims, audit, stats, network, settle, pool)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consortium", description="Insurance data consortium node")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConsortiumError as exc:
        if args.debug:
            raise
        print(f"consortium: error: {exc.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("consortium: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected environment: still one line by default
        if args.debug:
            raise
        print(f"consortium: unexpected error: {type(exc).__name__}: {exc}; rerun with --debug for the traceback",
              file=sys.stderr)
        return 1

