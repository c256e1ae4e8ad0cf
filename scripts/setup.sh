#!/usr/bin/env bash
# Idempotent set-up: a Python 3.11 virtualenv in .venv with the project installed, and the npm tools
# (solc, anvil) in node_modules. Each step is skipped when its inputs have not changed since it last
# ran, so this costs well under a second on a machine that is already set up.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STAMPS=.venv/.stamps

say() { printf '[setup] %s\n' "$*" >&2; }

find_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PY="$(find_python)" || { say "Python 3.11 is required but was not found on PATH; install it and re-run."; exit 1; }
  say "creating virtualenv .venv"
  "$PY" -m venv .venv
fi
mkdir -p "$STAMPS"

py_key="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMPS/pip" 2>/dev/null)" != "$py_key" ]; then
  say "installing Python packages (pyproject.toml changed)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" >&2
  echo "$py_key" > "$STAMPS/pip"
fi

command -v npm >/dev/null 2>&1 || { say "npm (Node.js >= 18) is required for solc and anvil; install Node.js and re-run."; exit 1; }
npm_key="$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ "$(cat "$STAMPS/npm" 2>/dev/null)" != "$npm_key" ]; then
  say "installing npm tools (solc, anvil)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$npm_key" > "$STAMPS/npm"
fi

# Contract artifacts (build/contracts/, never committed): a running node only loads them and never compiles.
# compile_contracts keys the build on the sources, so this is a no-op until a contract changes.
.venv/bin/python -m node.chain.compiler

# Debian's chromium for the browser tests of the regulator/auditor pages (Playwright drives it via
# executable_path; no browser download). Only as root, only when missing; SKIP_CHROMIUM=1 skips it.
if [ "${SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] &&
   command -v apt-get >/dev/null 2>&1; then
  say "installing Debian chromium (browser tests)"
  if ! { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; then
    say "could not install chromium; the browser tests will be skipped"
  fi
fi

# geth v1.13.15 for the multi-validator (Clique) tests, built once from scripts/geth's wrapper module
# into .cache/geth (skipped when that build is present). SKIP_GETH=1 skips it.
if [ "${SKIP_GETH:-0}" != "1" ]; then
  bash scripts/geth/build.sh
fi
