"""This node's Paillier key for statistics: unlocked with the member passphrase (generated on first start) and
registered on the ConsortiumRegistry with the X25519 key, so participants can check a job's key against it."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from node.chain.ledger import Ledger
from node.paillier_store import load_or_create
from node.stats.errors import KeyNotReady
from privacy.paillier import PrivateKey

log = logging.getLogger("consortium.stats")


class StatsKey:
    def __init__(self, home: Path, passphrase: str | None, ledger: Ledger, x25519_public: bytes, bits: int = 2048):
        self.home = home
        self.passphrase = passphrase
        self.ledger = ledger
        self.x25519_public = x25519_public
        self.bits = bits
        self.ready = threading.Event()
        self.private_key: PrivateKey | None = None
        self.error: str | None = None
        self.retrying = False  # ``error`` is about registering on chain, which is being retried

    def prepare(self, stop: threading.Event) -> bool:
        """Load (or generate) the key and register it; False, with ``error`` saying why, when it cannot."""
        try:
            if not self.passphrase:
                raise KeyNotReady("no passphrase to unlock the Paillier key",
                                  hint="start the node with CONSORTIUM_PASSPHRASE set")
            self.private_key = load_or_create(self.home, self.passphrase, bits=self.bits)
        except Exception as exc:  # the node still serves everything else; stats requests say why they wait
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("statistics key not ready: %s", self.error)
            return False
        if not self._publish_until_registered(stop):
            return False
        self.ready.set()
        return True

    def _publish_until_registered(self, stop: threading.Event) -> bool:
        """Publish the keys, retrying with backoff (1 s doubling to 15 s) until it works or the node stops.

        A new member's account often has no gas yet when its node first starts; once the consortium funds
        it, the next attempt succeeds and the node becomes ready without a restart (False: stopped first)."""
        delay = 1.0
        while not stop.is_set():
            try:
                self.publish()
            except Exception as exc:
                self.error, self.retrying = f"{type(exc).__name__}: {exc}", True
                log.warning("statistics key not registered on chain (%s); retrying in %.0f s", self.error, delay)
                stop.wait(delay)
                delay = min(delay * 2, 15.0)
                continue
            self.error, self.retrying = None, False
            return True
        return False

    def publish(self) -> None:
        """Register this node's X25519 key and Paillier fingerprint on the registry if they differ."""
        record = self.ledger.member(self.ledger.address)
        fingerprint = bytes.fromhex(self.private_key.public_key.fingerprint)
        if record.x25519_key != self.x25519_public or record.paillier_fingerprint != fingerprint:
            self.ledger.rotate_keys(self.x25519_public, fingerprint)
            log.info("registered X25519 key and Paillier fingerprint %s", fingerprint.hex()[:16])

    def wait(self, timeout: float = 120.0) -> PrivateKey:
        if not self.ready.wait(timeout):
            raise KeyNotReady(f"the node's Paillier key is not ready ({self.error or 'still generating'})",
                              hint="retry in a few seconds; see the node log")
        return self.private_key
