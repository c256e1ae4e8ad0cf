"""Deploy the consortium contracts and read/write the deployment file.

The deployment file is all a node or an auditor needs besides an RPC URL: chain id, contract
addresses, ABI hashes (to detect a deployment made from other sources) and the deployment block
(where event indexing starts).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from node.chain.compiler import DEPLOYED_CONTRACTS, EVM_VERSION, POOL_CONTRACTS, check_evm_version, compile_contracts
from node.chain.errors import DeploymentError
from node.chain.gateway import ChainGateway
from node.enums import ZERO32, ClaimStep, Purpose, Role, Status  # noqa: F401 (re-exported: imported from here)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class GenesisMember:
    address: str
    name: str
    role: Role
    endpoint: str = ""
    x25519_key: bytes = ZERO32
    paillier_fingerprint: bytes = ZERO32


@dataclass
class Deployment:
    chain_id: int
    deployment_block: int
    contracts: dict[str, str]  # name -> address
    abi_hashes: dict[str, str]
    deployed_at: float = field(default_factory=time.time)
    rpc_url: str | None = None  # where it was deployed; a hint only, callers pass their own URL
    evm_version: str = EVM_VERSION  # what the bytecode was compiled for: a property of the network

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": FORMAT_VERSION, **asdict(self)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)  # atomic: a reader never sees half a deployment file
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Deployment":
        path = Path(path)
        hint = "pass the deployment file written by `consortium chain up` (--deployment or `deployment` in the node's TOML)"
        if not path.exists():
            raise DeploymentError(f"deployment file {path} does not exist", hint=hint)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT_VERSION:
                raise DeploymentError(f"deployment file {path} has format {data.get('format')!r}, expected {FORMAT_VERSION}", hint=hint)
            deployment = cls(chain_id=int(data["chain_id"]), deployment_block=int(data["deployment_block"]),
                             contracts={k: Web3.to_checksum_address(v) for k, v in data["contracts"].items()},
                             abi_hashes=dict(data["abi_hashes"]), deployed_at=float(data.get("deployed_at", 0)),
                             rpc_url=data.get("rpc_url"), evm_version=check_evm_version(data.get("evm_version", EVM_VERSION)))
        except DeploymentError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeploymentError(f"deployment file {path} is malformed ({type(exc).__name__}: {exc})", hint=hint) from None
        missing = [n for n in DEPLOYED_CONTRACTS if n not in deployment.contracts]
        if missing:
            raise DeploymentError(f"deployment file {path} lacks {', '.join(missing)}", hint=hint)
        return deployment


def attach(gateway: ChainGateway, deployment: Deployment, *, check: bool = True) -> ChainGateway:
    """Bind the deployed contracts; with ``check``, refuse a deployment that does not match this chain or these sources."""
    hint = "pass the deployment file of this chain and checkout, or deploy anew with `consortium chain up`"
    if check and deployment.chain_id != gateway.chain_id:
        raise DeploymentError(f"deployment is for chain id {deployment.chain_id} but the RPC serves chain id {gateway.chain_id}", hint=hint)
    for name in DEPLOYED_CONTRACTS:
        address = deployment.contracts[name]
        if check:
            if gateway.w3.eth.get_code(address) in (b"", None) or len(gateway.w3.eth.get_code(address)) == 0:
                raise DeploymentError(f"no {name} contract at {address} on this chain (stale deployment file?)", hint=hint)
            if deployment.abi_hashes.get(name) != gateway.artifacts[name].abi_hash:
                raise DeploymentError(f"deployed {name} was built from other sources than this checkout (ABI differs)", hint=hint)
        gateway.bind(name, address)
    return gateway


def deploy_consortium(gateway: ChainGateway, deployer: LocalAccount, genesis: list[GenesisMember], *,
                      evm_version: str | None = None) -> Deployment:
    """Deploy every consortium contract with ``genesis`` as the founding members and return the deployment.

    ``evm_version`` is the network's (``paris`` on a Clique network, which has no PUSH0); by default the
    version the gateway's artifacts were compiled for.
    """
    if not genesis:
        raise DeploymentError("at least one genesis member is needed", hint="list the founding members")
    if evm_version is not None and gateway.artifacts[DEPLOYED_CONTRACTS[0]].evm_version != evm_version:
        gateway.artifacts = compile_contracts(evm_version=evm_version)
    evm_version = gateway.artifacts[DEPLOYED_CONTRACTS[0]].evm_version
    start_block = gateway.block_number()
    registry = gateway.deploy_contract(
        deployer, "ConsortiumRegistry",
        [Web3.to_checksum_address(m.address) for m in genesis], [m.name for m in genesis], [int(m.role) for m in genesis],
        [m.endpoint for m in genesis], [m.x25519_key for m in genesis], [m.paillier_fingerprint for m in genesis],
    )
    addresses = {"ConsortiumRegistry": registry}
    # These only take the registry's address and do not depend on each other: send them
    # back to back and wait once.
    sent = {}
    for name in ("DataUseAuthorization", "EvidenceRegistry", "StatsLedger", "Settlement"):
        factory = gateway.w3.eth.contract(abi=gateway.artifacts[name].abi, bytecode=gateway.artifacts[name].bytecode)
        sent[name] = gateway.submit(deployer, factory.constructor(registry))
    payouts = gateway.w3.eth.contract(abi=gateway.artifacts["ClaimPayouts"].abi, bytecode=gateway.artifacts["ClaimPayouts"].bytecode)
    sent["ClaimPayouts"] = gateway.submit(deployer, payouts.constructor())
    for name, tx in sent.items():
        addresses[name] = tx.wait()["contractAddress"]
    # Pools read claims from EvidenceRegistry and reserve each claim they pay on ClaimPayouts: deployed once
    # both addresses are known; then ClaimPayouts accepts reservations from exactly these two (bound once).
    pools = {}
    for name in POOL_CONTRACTS:
        factory = gateway.w3.eth.contract(abi=gateway.artifacts[name].abi, bytecode=gateway.artifacts[name].bytecode)
        pools[name] = gateway.submit(deployer, factory.constructor(registry, addresses["EvidenceRegistry"],
                                                                   addresses["ClaimPayouts"]))
    for name, tx in pools.items():
        addresses[name] = tx.wait()["contractAddress"]
    claim_payouts = gateway.w3.eth.contract(address=addresses["ClaimPayouts"], abi=gateway.artifacts["ClaimPayouts"].abi)
    gateway.transact(deployer, claim_payouts.functions.bindSchemes([addresses[n] for n in POOL_CONTRACTS]))
    # Settlement: the data market needs the authorization contract, which then accepts grants from it
    # (bound once, by this deployer; nobody can rebind it later).
    addresses["DataMarket"] = gateway.deploy_contract(deployer, "DataMarket", registry, addresses["DataUseAuthorization"])
    authorizations = gateway.w3.eth.contract(address=addresses["DataUseAuthorization"], abi=gateway.artifacts["DataUseAuthorization"].abi)
    gateway.transact(deployer, authorizations.functions.bindMarket(addresses["DataMarket"]))
    deployment = Deployment(
        chain_id=gateway.chain_id, deployment_block=start_block + 1, contracts=addresses,
        abi_hashes={n: gateway.artifacts[n].abi_hash for n in DEPLOYED_CONTRACTS}, rpc_url=gateway.rpc_url,
        evm_version=evm_version,
    )
    attach(gateway, deployment, check=False)
    return deployment
