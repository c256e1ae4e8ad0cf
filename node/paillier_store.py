"""The node's long-lived Paillier key, encrypted at rest with the member passphrase.

One file, ``paillier.json`` in the node home: the private key (p, q) as JSON, encrypted with
AES-256-GCM under a key derived from the member passphrase by scrypt. The public modulus and the
fingerprint are stored in the clear as associated data, so a tampered file fails to decrypt rather
than loading a different key. Generated on first start (>= 2048 bits; the consortium minimum is
enforced by privacy.paillier), then reused: its fingerprint is what the registry publishes.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from node.errors import KeyStoreError
from privacy.errors import PrivacyError
from privacy.paillier import PrivateKey, generate_keypair

FILE_NAME = "paillier.json"
FORMAT = "consortium-paillier-key/1"
DEFAULT_BITS = 2048
# scrypt n = 2^15, r = 8: ~0.1 s and 32 MB per unlock. The member account keystore (the key that signs
# transactions) uses 2^18; this file is unlocked at every node start, and its passphrase is the same.
SCRYPT_N = 2**15


def _derive(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


def save_private_key(path: Path, key: PrivateKey, passphrase: str, *, scrypt_n: int = SCRYPT_N) -> None:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    public = {"n": str(key.public_key.n), "fingerprint": key.public_key.fingerprint}
    aad = json.dumps(public, sort_keys=True).encode()
    secret = json.dumps({"p": str(key.p), "q": str(key.q)}).encode()
    sealed = AESGCM(_derive(passphrase, salt, scrypt_n)).encrypt(nonce, secret, aad)
    doc = {"format": FORMAT, "public": public, "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": salt.hex()},
           "cipher": {"name": "aes-256-gcm", "nonce": nonce.hex(), "ciphertext": sealed.hex()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_private_key(path: Path, passphrase: str) -> PrivateKey:
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError("unknown format")
        public, kdf, cipher = doc["public"], doc["kdf"], doc["cipher"]
        aad = json.dumps(public, sort_keys=True).encode()
        key = _derive(passphrase, bytes.fromhex(kdf["salt"]), int(kdf["n"]))
        secret = json.loads(AESGCM(key).decrypt(bytes.fromhex(cipher["nonce"]), bytes.fromhex(cipher["ciphertext"]), aad))
    except InvalidTag:
        raise KeyStoreError(f"wrong passphrase or tampered file {path}", hint="check CONSORTIUM_PASSPHRASE") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a readable Paillier key file ({exc})",
                            hint="restore it from backup, or remove it to generate a new key (then re-register)") from None
    try:
        private = PrivateKey.from_dict({"n": public["n"], "p": secret["p"], "q": secret["q"]})
    except PrivacyError as exc:
        raise KeyStoreError(f"{path}: {exc}", hint="generate a new key of at least 2048 bits") from None
    if private.public_key.fingerprint != public.get("fingerprint"):
        raise KeyStoreError(f"{path}: fingerprint does not match the key", hint="restore the file from backup")
    return private


def load_or_create(home: Path, passphrase: str, *, bits: int = DEFAULT_BITS) -> PrivateKey:
    """The node's Paillier private key from ``home``; generated and saved on first use."""
    path = Path(home) / FILE_NAME
    if path.exists():
        return load_private_key(path, passphrase)
    _, private = generate_keypair(bits)
    save_private_key(path, private, passphrase)
    return private
