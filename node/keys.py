"""Member keys, encrypted at rest.

A member's identity is a folder with two files:
- ``account.json``: the Ethereum account key as a standard keystore v3 file (scrypt + AES-128-CTR),
  which signs every transaction and every request;
- ``x25519.pem``: the X25519 key for pairwise masks and blinding, PKCS#8 encrypted with the same passphrase.
The passphrase comes from ``CONSORTIUM_PASSPHRASE`` or from a file named by ``CONSORTIUM_PASSPHRASE_FILE``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.errors import KeyStoreError

PASSPHRASE_ENV = "CONSORTIUM_PASSPHRASE"
PASSPHRASE_FILE_ENV = "CONSORTIUM_PASSPHRASE_FILE"
MIN_PASSPHRASE_LENGTH = 8
# eth-keyfile's default scrypt cost (n = 2**18); tests may lower it, nothing else should.
DEFAULT_SCRYPT_N = 2**18


@dataclass(frozen=True)
class MemberKeys:
    account: LocalAccount
    x25519: X25519PrivateKey

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def x25519_public(self) -> bytes:
        return self.x25519.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def resolve_passphrase(passphrase: str | None = None, passphrase_file: str | Path | None = None) -> str:
    """The passphrase given, or read from the environment; refuses to go on without one."""
    if passphrase is None and passphrase_file is None:
        passphrase = os.environ.get(PASSPHRASE_ENV)
        passphrase_file = os.environ.get(PASSPHRASE_FILE_ENV)
    if passphrase is None and passphrase_file:
        try:
            passphrase = Path(passphrase_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise KeyStoreError(f"cannot read passphrase file {passphrase_file}: {exc.strerror}",
                                hint="check the path in CONSORTIUM_PASSPHRASE_FILE") from None
    if not passphrase:
        raise KeyStoreError("no passphrase for the member keys",
                            hint=f"set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}")
    return passphrase


def create_member_keys(folder: str | Path, passphrase: str, *, scrypt_n: int = DEFAULT_SCRYPT_N,
                       private_key: bytes | None = None) -> MemberKeys:
    """Generate (or import) a member's keys and write them encrypted to ``folder``; never overwrites."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyStoreError(f"passphrase too short (at least {MIN_PASSPHRASE_LENGTH} characters)",
                            hint="choose a longer passphrase")
    folder = Path(folder)
    account_file, x_file = folder / "account.json", folder / "x25519.pem"
    if account_file.exists() or x_file.exists():
        raise KeyStoreError(f"keys already exist in {folder}", hint="use another folder or load the existing keys")
    folder.mkdir(parents=True, exist_ok=True)
    account = Account.from_key(private_key) if private_key else Account.create()
    keystore = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=scrypt_n)
    x25519 = X25519PrivateKey.generate()
    pem = x25519.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(passphrase.encode()))
    _write_private(account_file, json.dumps(keystore).encode())
    _write_private(x_file, pem)
    return MemberKeys(account, x25519)


def load_member_keys(folder: str | Path, passphrase: str) -> MemberKeys:
    """Decrypt a member's keys; a wrong passphrase or a damaged file is a one-line KeyStoreError."""
    folder = Path(folder)
    account_file, x_file = folder / "account.json", folder / "x25519.pem"
    for f in (account_file, x_file):
        if not f.exists():
            raise KeyStoreError(f"missing key file {f}", hint="create keys with `consortium keys new FOLDER`")
    try:
        keystore = json.loads(account_file.read_text())
    except ValueError:
        raise KeyStoreError(f"{account_file} is not a keystore JSON file", hint="restore it from your backup") from None
    try:
        private = Account.decrypt(keystore, passphrase)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeyStoreError(f"wrong passphrase for {account_file}", hint="check CONSORTIUM_PASSPHRASE") from None
        raise KeyStoreError(f"{account_file} is damaged: {exc}", hint="restore it from your backup") from None
    try:
        x25519 = serialization.load_pem_private_key(x_file.read_bytes(), password=passphrase.encode())
    except (ValueError, TypeError):
        raise KeyStoreError(f"wrong passphrase or damaged file {x_file}", hint="check CONSORTIUM_PASSPHRASE") from None
    if not isinstance(x25519, X25519PrivateKey):
        raise KeyStoreError(f"{x_file} holds no X25519 key", hint="restore it from your backup")
    return MemberKeys(Account.from_key(private), x25519)


def _write_private(path: Path, data: bytes) -> None:
    # 0600 from the start: the file is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
