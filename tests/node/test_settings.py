"""Node settings (node/runtime/settings.py): secure defaults, the environment over the file, and refused values as one line."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from web3 import Web3

from node.errors import ConfigError
from node.runtime.settings import NodeSettings, load_settings

REQUIRED = 'name = "insurer_a"\nhome = "home"\nkeys = "keys"\nrpc_url = "http://127.0.0.1:8545"\ndeployment = "deployment.json"\n'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No CONSORTIUM_* variable of the machine leaks into a test."""
    for key in [k for k in os.environ if k.startswith("CONSORTIUM_")]:
        monkeypatch.delenv(key)


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(REQUIRED + extra)
    return path


def test_defaults_are_the_secure_ones(tmp_path):
    s = load_settings(config(tmp_path))
    assert s.host == "127.0.0.1"  # loopback unless the operator says otherwise
    assert s.port == 8700
    assert s.authz_cache is True
    assert s.confirmations == 0
    assert s.max_body_bytes == 1_000_000
    assert s.auth_window_seconds == 120 and s.auth_max_nonces == 250_000
    assert s.release_min_cohort == 10 and s.release_epsilon_budget == 1.0 and s.release_history_compared == 500
    assert s.evidence_keep_documents is False  # hashes only unless asked
    assert s.web_login_seconds == 300
    assert s.runs_validator is False and s.validator_accounts == [] and s.validator_engine == "clique"
    assert s.tls_certfile is None and s.tls_keyfile is None
    assert s.database_url is None and s.db_url == f"sqlite:///{(tmp_path / 'home' / 'node.db').resolve()}"


def test_relative_paths_are_resolved_against_the_file_and_absolute_ones_kept(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "cert.pem"
    s = load_settings(config(tmp_path, f'tls_certfile = "{elsewhere}"\ntls_keyfile = "tls/key.pem"\n'))
    assert s.home == tmp_path.resolve() / "home"
    assert s.keys == tmp_path.resolve() / "keys"
    assert s.deployment == tmp_path.resolve() / "deployment.json"
    assert s.tls_certfile == elsewhere
    assert s.tls_keyfile == tmp_path.resolve() / "tls" / "key.pem"


def test_the_environment_overrides_the_file(tmp_path, monkeypatch):
    path = config(tmp_path, "port = 8800\nauthz_cache = true\nrelease_min_cohort = 20\n")
    monkeypatch.setenv("CONSORTIUM_PORT", "9100")
    monkeypatch.setenv("CONSORTIUM_AUTHZ_CACHE", "false")
    monkeypatch.setenv("CONSORTIUM_VALIDATOR_ACCOUNTS", '["0x' + "ab" * 20 + '"]')
    s = load_settings(path)
    assert s.port == 9100
    assert s.authz_cache is False
    assert s.release_min_cohort == 20  # not in the environment: the file's value
    assert s.validator_accounts == [Web3.to_checksum_address("0x" + "ab" * 20)]


def test_keyword_overrides_win_over_environment_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSORTIUM_PORT", "9100")
    assert load_settings(config(tmp_path, "port = 8800\n"), port=9200).port == 9200


def test_settings_from_the_environment_alone(tmp_path, monkeypatch):
    for key, value in {"NAME": "regulator", "HOME": str(tmp_path), "KEYS": str(tmp_path / "k"),
                       "RPC_URL": "http://127.0.0.1:1", "DEPLOYMENT": str(tmp_path / "d.json")}.items():
        monkeypatch.setenv(f"CONSORTIUM_{key}", value)
    s = load_settings()
    assert s.name == "regulator" and s.home == tmp_path


@pytest.mark.parametrize("extra,field", [
    ("port = 70000\n", "port"),
    ("port = -1\n", "port"),
    ("max_body_bytes = 0\n", "max_body_bytes"),
    ("auth_window_seconds = 0\n", "auth_window_seconds"),
    ("auth_max_nonces = 999\n", "auth_max_nonces"),  # a tiny replay memory would refuse honest traffic
    ("confirmations = -1\n", "confirmations"),
    ("log_batch_max = 2001\n", "log_batch_max"),
    ("web_login_seconds = 3601\n", "web_login_seconds"),
    ("release_min_cohort = 0\n", "release_min_cohort"),
    ("release_epsilon_budget = 0\n", "release_epsilon_budget"),
    ("http_max_header_bytes = 1024\n", "http_max_header_bytes"),
    ('validator_engine = "pow"\n', "validator_engine"),
    ('validator_accounts = ["0x1234"]\n', "validator_accounts"),
    ('port = "eighty"\n', "port"),
    ("unknown_setting = 1\n", "unknown_setting"),  # a typo is refused, never ignored
])
def test_refused_values_name_the_setting(tmp_path, extra, field):
    path = config(tmp_path, extra)
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert str(e.value).startswith(f"bad setting {field!r}")
    assert e.value.reason == "config" and str(path) in e.value.hint


def test_a_missing_required_setting_is_refused(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(REQUIRED.replace('rpc_url = "http://127.0.0.1:8545"\n', ""))
    with pytest.raises(ConfigError, match="bad setting 'rpc_url'"):
        load_settings(path)


def test_a_bad_environment_value_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSORTIUM_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="bad setting 'port'"):
        load_settings(config(tmp_path))


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)


def test_a_failed_load_does_not_leave_its_file_behind(tmp_path):
    with pytest.raises(ConfigError):
        load_settings(config(tmp_path, "port = 70000\n"))
    assert NodeSettings._toml_file is None
    with pytest.raises(ConfigError, match="bad setting 'name'"):
        load_settings()  # no file now: the earlier file's values must not be read


def test_public_view_hides_credentials_in_urls(tmp_path):
    s = load_settings(config(tmp_path), database_url="postgresql://node:s3cret@db.internal/node",
                      rpc_url="https://user:token@rpc.internal/")
    view = s.public_view()
    assert "s3cret" not in str(view) and "token" not in str(view)
    assert view["database_url"] == "postgresql://***@db.internal/node"
    assert view["rpc_url"] == "https://***@rpc.internal/"
    assert load_settings(config(tmp_path)).public_view()["rpc_url"] == "http://127.0.0.1:8545"
