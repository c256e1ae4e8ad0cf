#!/usr/bin/env python3
"""Benchmarks: ``python scripts/bench.py NAME [options] [--json]``.

Each benchmark lives in ``scripts/benches/<name>.py`` (dashes in NAME become underscores) and
defines ``describe`` (one line), ``add_arguments(parser)`` and ``run(args, progress) -> dict``.
The result is printed as a table, and with ``--json`` as one JSON object on the last line.
Baselines run in the same process run as our code, on the same data.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

# Run inside the project's virtualenv even when called with the system python.
if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def available() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules([str(ROOT / "scripts" / "benches")]))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(names))
        return 0 if argv else 2
    name = argv.pop(0)
    if name not in names:
        print(f"unknown benchmark {name!r}; choose one of: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benches.{name.replace('-', '_')}")
    parser = argparse.ArgumentParser(prog=f"bench.py {name}", description=module.describe)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    module.add_arguments(parser)
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        result = module.run(args, progress)
    table = Table(title=f"bench {name}")
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    console.print(table)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
