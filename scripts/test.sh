#!/usr/bin/env bash
# Quick start, command two: set up if needed, then run the whole test suite.
# pytest's own exit code is passed through: 5 ("no tests collected") fails like any other error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# Two workers, whole files each (module fixtures such as a chain and its nodes stay in one process): most
# tests wait on chains and node processes, so two workers halve the wall time on two cores.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
