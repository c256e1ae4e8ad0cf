"""Compile the Solidity contracts with py-solc-x against the npm solc (solcjs) wrapper.

Artifacts (ABI, bytecode) go to ``build/contracts/artifacts.json`` together with a hash of the
sources and settings, and are rebuilt only when that hash changes. Two doors: :func:`compile_contracts`
(dev tools that deploy, tests, benchmarks, ``scripts/setup.sh``) compiles when needed;
:func:`load_artifacts` (a running node) only reads the build and refuses a missing or stale one, so a
node never needs Node.js or solc. ``python -m node.chain.compiler`` builds them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from node.errors import ConsortiumError
from node.paths import BUILD_DIR, CONTRACTS_DIR, NODE_MODULES, SOLC_WRAPPER

# The contracts that get deployed, in deployment order (each later one takes the registry address).
DEPLOYED_CONTRACTS = ("ConsortiumRegistry", "DataUseAuthorization", "EvidenceRegistry", "StatsLedger", "DataMarket", "Settlement")
# Pools (risk pool, mutual aid): they also take EvidenceRegistry's and ClaimPayouts' addresses, so they are
# deployed after them. ClaimPayouts is the record both consult so one claim is paid by one scheme only.
POOL_CONTRACTS = ("RiskPool", "MutualAid")
DEPLOYED_CONTRACTS += ("ClaimPayouts",) + POOL_CONTRACTS

# The EVM version is a property of the network the contracts run on: py-evm (eth-tester) and anvil run
# "prague" (solc 0.8.37 would default to "osaka"); geth 1.13.15's Clique network stops before Shanghai,
# so it has no PUSH0 and needs "paris". Nodes only need the ABI, which is the same for every version.
EVM_VERSION = "prague"
EVM_VERSIONS = ("paris", "shanghai", "cancun", "prague")


class CompilerError(ConsortiumError):
    reason = "compiler"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: str
    evm_version: str = EVM_VERSION

    @property
    def abi_hash(self) -> str:
        return abi_hash(self.abi)


def abi_hash(abi: list) -> str:
    """A stable hash of an ABI, recorded in the deployment file to detect stale deployments."""
    return "0x" + hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _sources(contracts_dir: Path) -> dict[str, str]:
    files = sorted(contracts_dir.glob("*.sol"))
    if not files:
        raise CompilerError(f"no Solidity sources in {contracts_dir}", hint="check out the repository's contracts/ folder")
    return {f.name: f.read_text() for f in files}


def _standard_input(sources: dict[str, str], evm_version: str) -> dict:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "evmVersion": evm_version,
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def _library_versions() -> str:
    package = NODE_MODULES / "@openzeppelin" / "contracts" / "package.json"
    return package.read_text() if package.exists() else ""


def _check_toolchain() -> None:
    if shutil.which("node") is None:
        raise CompilerError("Node.js is not installed, so the Solidity compiler cannot run",
                            hint="install Node.js >= 18 and run scripts/setup.sh")
    if not (NODE_MODULES / "solc" / "package.json").exists():
        raise CompilerError("the Solidity compiler (npm package solc) is missing",
                            hint="run scripts/setup.sh (it runs npm ci)")
    if not (NODE_MODULES / "@openzeppelin" / "contracts" / "package.json").exists():
        raise CompilerError("OpenZeppelin Contracts (npm package @openzeppelin/contracts) is missing",
                            hint="run scripts/setup.sh (it runs npm ci)")


def check_evm_version(evm_version: str) -> str:
    if evm_version not in EVM_VERSIONS:
        raise CompilerError(f"unsupported EVM version {evm_version!r}", hint=f"use one of {', '.join(EVM_VERSIONS)}")
    return evm_version


def _build_key(contracts_dir: Path, evm_version: str) -> tuple[dict[str, str], dict, str]:
    """(sources, solc standard input, the key a build of them is stored under)."""
    check_evm_version(evm_version)
    sources = _sources(contracts_dir)
    std_input = _standard_input(sources, evm_version)
    # Imported libraries (OpenZeppelin, from node_modules) are not in std_input: their version joins the key.
    key = hashlib.sha256((json.dumps(std_input, sort_keys=True) + _library_versions()).encode()).hexdigest()
    return sources, std_input, key


def _cache_file(build_dir: Path, evm_version: str) -> Path:
    name = "artifacts.json" if evm_version == EVM_VERSION else f"artifacts-{evm_version}.json"
    return build_dir / "contracts" / name


def _read_cache(cache: Path, key: str, evm_version: str) -> dict[str, Artifact] | None:
    """The cached artifacts if ``cache`` holds a build of exactly ``key``; None if missing, stale or corrupt."""
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return {n: Artifact(n, a["abi"], a["bytecode"], evm_version) for n, a in cached["contracts"].items()}
    except (OSError, ValueError, KeyError):
        pass  # missing or corrupt: the same as stale
    return None


def load_artifacts(contracts_dir: Path = CONTRACTS_DIR, build_dir: Path = BUILD_DIR,
                   evm_version: str = EVM_VERSION) -> dict[str, Artifact]:
    """The built artifacts for the sources in ``contracts_dir``, never compiling: a running node calls this."""
    _, _, key = _build_key(contracts_dir, evm_version)
    cache = _cache_file(build_dir, evm_version)
    artifacts = _read_cache(cache, key, evm_version)
    if artifacts is None:
        state = "stale (built from other contract sources)" if cache.exists() else "missing"
        raise CompilerError(f"contract artifacts {cache} are {state}",
                            hint="run scripts/setup.sh (or .venv/bin/python -m node.chain.compiler) to build them")
    return artifacts


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR, build_dir: Path = BUILD_DIR, force: bool = False,
                      evm_version: str = EVM_VERSION) -> dict[str, Artifact]:
    """Return the compiled artifacts of every contract in ``contracts_dir`` for ``evm_version``, compiling only if needed."""
    sources, std_input, key = _build_key(contracts_dir, evm_version)
    cache = _cache_file(build_dir, evm_version)
    if not force:
        cached = _read_cache(cache, key, evm_version)
        if cached is not None:
            return cached
    _check_toolchain()
    import solcx
    from solcx.exceptions import SolcError

    try:
        output = solcx.compile_standard(std_input, solc_binary=str(SOLC_WRAPPER),
                                        allow_paths=[str(contracts_dir), str(NODE_MODULES)])
    except SolcError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise CompilerError(f"Solidity compilation failed: {first}", hint="fix the contract source and retry") from exc
    contracts: dict[str, dict] = {}
    for unit in sorted(sources):
        for name, out in output.get("contracts", {}).get(unit, {}).items():
            bytecode = out["evm"]["bytecode"]["object"]
            contracts[name] = {"abi": out["abi"], "bytecode": bytecode}
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half-written cache that parses.
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump({"key": key, "solc": "solcjs via scripts/solc", "evmVersion": evm_version, "contracts": contracts}, fh)
    os.replace(tmp, cache)
    return {n: Artifact(n, a["abi"], a["bytecode"], evm_version) for n, a in contracts.items()}


def opcodes(bytecode: str) -> list[int]:
    """The opcodes of EVM bytecode (PUSH immediates skipped, the trailing CBOR metadata left out)."""
    code = bytes.fromhex(bytecode[2:] if bytecode.startswith("0x") else bytecode)
    if len(code) >= 2:
        meta = int.from_bytes(code[-2:], "big") + 2  # solc appends CBOR metadata and its 2-byte length
        if meta <= len(code):
            code = code[:-meta]
    out, i = [], 0
    while i < len(code):
        op = code[i]
        out.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return out


PUSH0 = 0x5F


if __name__ == "__main__":  # `python -m node.chain.compiler`: build the artifacts a node loads (scripts/setup.sh runs it)
    import sys

    try:
        built = compile_contracts()
    except CompilerError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
    print(f"[setup] contract artifacts ready: {len(built)} contracts in {_cache_file(BUILD_DIR, EVM_VERSION)}", file=sys.stderr)
