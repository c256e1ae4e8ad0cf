"""Compile the Solidity contracts with py-solc-x against the npm solc (solcjs) wrapper.

Artifacts (ABI, bytecode) go to ``build/contracts/artifacts.json`` together with a hash of the
sources and settings, and are rebuilt only when that hash changes: one py-solc-x call costs about a
second, so a test session or a node start compiles at most once.
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
DEPLOYED_CONTRACTS = ("ConsortiumRegistry", "DataUseAuthorization", "EvidenceRegistry", "StatsLedger")

# py-evm (eth-tester) runs "prague"; solc 0.8.37 would default to "osaka". Set it for every backend.
EVM_VERSION = "prague"


class CompilerError(ConsortiumError):
    reason = "compiler"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: str

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


def _standard_input(sources: dict[str, str]) -> dict:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def _check_toolchain() -> None:
    if shutil.which("node") is None:
        raise CompilerError("Node.js is not installed, so the Solidity compiler cannot run",
                            hint="install Node.js >= 18 and run scripts/setup.sh")
    if not (NODE_MODULES / "solc" / "package.json").exists():
        raise CompilerError("the Solidity compiler (npm package solc) is missing",
                            hint="run scripts/setup.sh (it runs npm ci)")


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR, build_dir: Path = BUILD_DIR, force: bool = False) -> dict[str, Artifact]:
    """Return the compiled artifacts of every contract in ``contracts_dir``, compiling only if needed."""
    sources = _sources(contracts_dir)
    std_input = _standard_input(sources)
    key = hashlib.sha256(json.dumps(std_input, sort_keys=True).encode()).hexdigest()
    cache = build_dir / "contracts" / "artifacts.json"
    if not force and cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                return {n: Artifact(n, a["abi"], a["bytecode"]) for n, a in cached["contracts"].items()}
        except (ValueError, KeyError):
            pass  # a corrupt cache is simply rebuilt
    _check_toolchain()
    import solcx
    from solcx.exceptions import SolcError

    try:
        output = solcx.compile_standard(std_input, solc_binary=str(SOLC_WRAPPER), allow_paths=[str(contracts_dir)])
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
        json.dump({"key": key, "solc": "solcjs via scripts/solc", "evmVersion": EVM_VERSION, "contracts": contracts}, fh)
    os.replace(tmp, cache)
    return {n: Artifact(n, a["abi"], a["bytecode"]) for n, a in contracts.items()}
