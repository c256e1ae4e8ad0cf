"""Member keys are encrypted at rest and refuse wrong passphrases."""
from __future__ import annotations

import json
import stat

import pytest

from node.errors import KeyStoreError
from node.keys import create_member_keys, load_member_keys, resolve_passphrase

FAST = 2**10  # scrypt cost lowered for the test only; production uses eth-keyfile's default


def test_keys_round_trip_and_are_private_files(tmp_path):
    keys = create_member_keys(tmp_path / "m", "correct horse battery", scrypt_n=FAST)
    loaded = load_member_keys(tmp_path / "m", "correct horse battery")
    assert loaded.address == keys.address and loaded.x25519_public == keys.x25519_public
    for name in ("account.json", "x25519.pem"):
        mode = stat.S_IMODE((tmp_path / "m" / name).stat().st_mode)
        assert mode == 0o600
    raw = (tmp_path / "m" / "account.json").read_text() + (tmp_path / "m" / "x25519.pem").read_text()
    assert keys.account.key.hex()[2:] not in raw and keys.account.key.hex() not in raw
    assert "ENCRYPTED PRIVATE KEY" in raw
    assert json.loads((tmp_path / "m" / "account.json").read_text())["crypto"]["kdf"] == "scrypt"


def test_wrong_passphrase_is_refused(tmp_path):
    create_member_keys(tmp_path / "m", "correct horse battery", scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        load_member_keys(tmp_path / "m", "incorrect horse")


def test_existing_keys_are_never_overwritten_and_short_passphrases_refused(tmp_path):
    create_member_keys(tmp_path / "m", "correct horse battery", scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="already exist"):
        create_member_keys(tmp_path / "m", "correct horse battery", scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="too short"):
        create_member_keys(tmp_path / "n", "short", scrypt_n=FAST)


def test_damaged_or_missing_key_files_are_clear_errors(tmp_path):
    with pytest.raises(KeyStoreError, match="missing key file"):
        load_member_keys(tmp_path / "none", "whatever123")
    create_member_keys(tmp_path / "m", "correct horse battery", scrypt_n=FAST)
    (tmp_path / "m" / "account.json").write_text("garbage")
    with pytest.raises(KeyStoreError, match="not a keystore"):
        load_member_keys(tmp_path / "m", "correct horse battery")


def test_passphrase_comes_from_environment_or_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CONSORTIUM_PASSPHRASE", raising=False)
    monkeypatch.delenv("CONSORTIUM_PASSPHRASE_FILE", raising=False)
    with pytest.raises(KeyStoreError, match="no passphrase"):
        resolve_passphrase()
    monkeypatch.setenv("CONSORTIUM_PASSPHRASE", "from-the-env")
    assert resolve_passphrase() == "from-the-env"
    monkeypatch.delenv("CONSORTIUM_PASSPHRASE")
    (tmp_path / "pw").write_text("from-a-file\n")
    monkeypatch.setenv("CONSORTIUM_PASSPHRASE_FILE", str(tmp_path / "pw"))
    assert resolve_passphrase() == "from-a-file"
    monkeypatch.setenv("CONSORTIUM_PASSPHRASE_FILE", str(tmp_path / "missing"))
    with pytest.raises(KeyStoreError, match="cannot read passphrase file"):
        resolve_passphrase()
