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
DEPLOYED_CONTRACTS = ("ConsortiumRegistry", "DataUseAuthorization", "EvidenceRegistry", "StatsLedger", "DataMarket", "Settlement")
# Pools (risk pool, mutual aid): they also take EvidenceRegistry's address, so they are deployed after it.
POOL_CONTRACTS = ("RiskPool", "MutualAid")
DEPLOYED_CONTRACTS += POOL_CONTRACTS

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


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR, build_dir: Path = BUILD_DIR, force: bool = False,
                      evm_version: str = EVM_VERSION) -> dict[str, Artifact]:
    """Return the compiled artifacts of every contract in ``contracts_dir`` for ``evm_version``, compiling only if needed."""
    check_evm_version(evm_version)
    sources = _sources(contracts_dir)
    std_input = _standard_input(sources, evm_version)
    # Imported libraries (OpenZeppelin, from node_modules) are not in std_input: their version joins the key.
    key = hashlib.sha256((json.dumps(std_input, sort_keys=True) + _library_versions()).encode()).hexdigest()
    name = "artifacts.json" if evm_version == EVM_VERSION else f"artifacts-{evm_version}.json"
    cache = build_dir / "contracts" / name
    if not force and cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                return {n: Artifact(n, a["abi"], a["bytecode"], evm_version) for n, a in cached["contracts"].items()}
        except (ValueError, KeyError):
            pass  # a corrupt cache is simply rebuilt
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
