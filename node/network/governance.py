"""The validator set follows governance: each member's node votes its own chain node's signer set.

A member that runs a validator signs blocks with its own account, so the registry names signers
directly. For every member of ``validators`` (the accounts that run a sealing node), a member in good
standing (ACTIVE or WARNED) should be a signer and any other should not; the governor proposes the
difference on its own chain node (``clique_propose``; on Besu ``qbft_proposeValidatorVote``) and
discards a proposal once the chain agrees, so a later change of status is voted afresh.
"""
from __future__ import annotations

import logging

from web3 import Web3

from node.chain.deployment import Status
from node.chain.geth import rpc
from node.chain.ledger import Ledger
from node.worker import BackgroundLoop

log = logging.getLogger("consortium.network")
GOOD_STANDING = (Status.ACTIVE, Status.WARNED)


def signer_votes(ledger: Ledger, signers: list[str], validators: set[str]) -> dict[str, bool]:
    """address -> True (add) / False (remove) for every validator whose signer status differs from its standing."""
    current = {Web3.to_checksum_address(s) for s in signers}
    votes = {}
    for address in sorted(validators):
        address = Web3.to_checksum_address(address)
        wanted = ledger.member(address).status in GOOD_STANDING
        if wanted != (address in current):
            votes[address] = wanted
    return votes


def sync_signers(ledger: Ledger, chain_url: str, validators: set[str], engine: str = "clique") -> dict[str, bool]:
    """Cast this member's votes on its own chain node; returns the votes standing after the call."""
    signers = rpc(chain_url, "clique_getSigners" if engine == "clique" else "qbft_getValidatorsByBlockNumber",
                  [] if engine == "clique" else ["latest"])
    votes = signer_votes(ledger, signers, validators)
    for address in sorted({Web3.to_checksum_address(v) for v in validators}):
        if address in votes:
            if engine == "clique":
                rpc(chain_url, "clique_propose", [address, votes[address]])
            else:
                rpc(chain_url, "qbft_proposeValidatorVote", [address, votes[address]])
        elif engine == "clique":
            rpc(chain_url, "clique_discard", [address])  # settled: do not keep voting on it
        else:
            rpc(chain_url, "qbft_discardValidatorVote", [address])
    return votes


class SignerGovernor(BackgroundLoop):
    thread_name = "signer-governor"

    def __init__(self, ledger: Ledger, chain_url: str, validators: set[str], *, poll_seconds: float = 1.0,
                 engine: str = "clique"):
        self.ledger = ledger
        self.chain_url = chain_url
        self.validators = set(validators)
        self.poll_seconds = poll_seconds
        self.engine = engine
        self.last_error: str | None = None
        self._init_loop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sync_signers(self.ledger, self.chain_url, self.validators, self.engine)
                self.last_error = None
            except Exception as exc:  # chain node restarting: keep voting once it is back
                if self.last_error != str(exc):
                    log.warning("signer governor: %s", exc)
                self.last_error = str(exc)
            self._pause(self.poll_seconds)
