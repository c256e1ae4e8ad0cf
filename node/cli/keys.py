"""`consortium keys new` and `consortium keys show`: a member's keys, encrypted at rest."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from node.cli.options import json_option


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from node.keys import create_member_keys, resolve_passphrase

    keys = create_member_keys(args.folder, resolve_passphrase())
    out = {"address": keys.address, "x25519": keys.x25519_public.hex(), "folder": str(args.folder)}
    print(json.dumps(out) if args.json else f"created {args.folder}: account {keys.address}")
    return 0


def _cmd_keys_show(args: argparse.Namespace) -> int:
    from node.keys import load_member_keys, resolve_passphrase

    keys = load_member_keys(args.folder, resolve_passphrase())
    out = {"address": keys.address, "x25519": keys.x25519_public.hex()}
    print(json.dumps(out) if args.json else f"account {keys.address}\nx25519  {out['x25519']}")
    return 0



def register(sub) -> None:
    keys = sub.add_parser("keys", help="member keys (encrypted at rest)").add_subparsers(dest="keys_command", required=True)
    new = keys.add_parser("new", help="create keys in FOLDER (passphrase from CONSORTIUM_PASSPHRASE[_FILE])")
    show = keys.add_parser("show", help="decrypt and show the public parts of the keys in FOLDER")
    for p, fn in ((new, _cmd_keys_new), (show, _cmd_keys_show)):
        p.add_argument("folder", type=Path)
        json_option(p)
        p.set_defaults(func=fn)
