#!/usr/bin/env bash
# Builds geth v1.13.15 (the last go-ethereum release that seals Clique blocks) from the wrapper Go
# module beside this script into .cache/geth/<version>-<key>/geth, keyed by go.mod, go.sum, the
# memsize stub and the Go version; skipped when that binary is already there. .cache/geth/bin/geth
# points at the current one (node/chain/geth.py looks there).
#
# The wrapper replaces github.com/fjl/memsize (links to runtime.stopTheWorld, refused by Go >= 1.23)
# with a stub. If the build still fails on another runtime linkname, it retries once with
# -ldflags=-checklinkname=0 and records that in BUILD_MODE: such a geth must never be run with --pprof.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VERSION=v1.13.15
say() { printf '[geth] %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || {
  say "Go (>= 1.24) is required to build geth $VERSION for the multi-validator tests; install Go and re-run bash scripts/setup.sh."
  exit 1
}
key="$( { cat "$HERE/go.mod" "$HERE/go.sum"; find "$HERE/memsize-stub" -type f -name '*.go*' | sort | xargs cat; go version; } | sha256sum | cut -c1-12)"
CACHE="$ROOT/.cache/geth"
DIR="$CACHE/$VERSION-$key"
BIN="$DIR/geth"
if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then
  ln -sfn "../$VERSION-$key/geth" "$CACHE/bin/geth" 2>/dev/null || { mkdir -p "$CACHE/bin" && ln -sfn "../$VERSION-$key/geth" "$CACHE/bin/geth"; }
  exit 0
fi

mkdir -p "$DIR" "$CACHE/bin"
tmp="$(mktemp "$DIR/geth.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
start=$(date +%s)
say "building geth $VERSION (first time only; a few minutes on 2 cores)"
export GOFLAGS="-mod=mod ${GOFLAGS:-}"
log="$DIR/build.log"
mode="memsize-stub"
if ! (cd "$HERE" && go build -trimpath -o "$tmp" github.com/ethereum/go-ethereum/cmd/geth) >"$log" 2>&1; then
  say "build with the memsize stub failed: $(grep -m1 -E 'error|invalid|undefined' "$log" || tail -1 "$log")"
  say "retrying with -ldflags=-checklinkname=0 (never run this geth with --pprof)"
  mode="memsize-stub+checklinkname=0"
  if ! (cd "$HERE" && go build -trimpath -ldflags=-checklinkname=0 -o "$tmp" github.com/ethereum/go-ethereum/cmd/geth) >>"$log" 2>&1; then
    say "geth $VERSION did not build; the exact errors are in $log:"
    tail -20 "$log" >&2
    exit 1
  fi
fi
"$tmp" version >/dev/null
chmod 755 "$tmp"
mv -f "$tmp" "$BIN"
trap - EXIT
echo "$mode" > "$DIR/BUILD_MODE"
ln -sfn "../$VERSION-$key/geth" "$CACHE/bin/geth"
say "built $BIN in $(( $(date +%s) - start )) s ($mode)"
