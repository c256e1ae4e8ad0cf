#!/usr/bin/env bash
# Quick start, command one: set up if needed, then run the consortium demo on a local chain.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/consortium" demo "$@"
