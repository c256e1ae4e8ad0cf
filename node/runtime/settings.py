"""Node settings: one pydantic-settings class, read from a TOML file and CONSORTIUM_* environment variables.

Environment variables override the file. Secrets (the key passphrase) are never settings: they come
from CONSORTIUM_PASSPHRASE or CONSORTIUM_PASSPHRASE_FILE and are never printed.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from node.errors import ConfigError


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSORTIUM_", extra="forbid")
    _toml_file: ClassVar[Path | None] = None

    name: str = Field(description="member name, for logs and tables")
    home: Path = Field(description="folder for the node's database and documents")
    keys: Path = Field(description="folder with account.json and x25519.pem (encrypted)")
    rpc_url: str = Field(description="JSON-RPC URL of the consortium chain")
    confirmations: int = Field(default=0, ge=0, le=1000, description="blocks on top before a transaction counts as "
                               "done (0 on QBFT/anvil, which never reorganize; a few on Clique)")
    deployment: Path = Field(description="deployment file (addresses, chain id)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in home")
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    auth_window_seconds: int = Field(default=120, gt=0, description="accepted clock skew / replay window")
    auth_max_nonces: int = Field(default=250_000, ge=1000, description="request nonces kept against replays (about 250 "
                                 "bytes each); when full, new requests get 503 until the oldest leave the window")
    log_flush_seconds: float = Field(default=1.0, gt=0, description="how often pending access logs go on chain")
    log_batch_max: int = Field(default=1000, gt=0, le=2000)
    authz_cache: bool = Field(default=True, description="cache chain authorization state, invalidated by mined events")
    evidence_batch_size: int = Field(default=100_000, gt=0, description="an evidence batch closes at this many hashes")
    evidence_batch_age: float = Field(default=2.0, gt=0, description="... or when its first hash is this old (seconds)")
    evidence_keep_documents: bool = Field(default=False, description="keep uploaded documents (else hashes only)")
    evidence_max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Slow clients: each bound closes a connection that would otherwise be held open for ever.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, description="request line and headers complete within")
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, description="body complete within this ...")
    http_body_min_bytes_per_second: int = Field(default=64 * 1024, gt=0, description="... plus one second per this many bytes")
    http_keep_alive_seconds: float = Field(default=5.0, gt=0, description="idle keep-alive connections close after")
    http_max_header_bytes: int = Field(default=16 * 1024, ge=4096, description="request line and headers at most")
    web_login_seconds: int = Field(default=300, gt=0, le=3600, description="a web-url login link expires after")
    release_min_cohort: int = Field(default=10, ge=1, description="owner's floor k: fewest distinct persons per released "
                                    "bucket (a job may raise it, never lower it)")
    release_epsilon_budget: float = Field(default=1.0, gt=0, description="differential-privacy epsilon this node releases "
                                          "per requester and dataset, over the node's lifetime")
    release_history_compared: int = Field(default=500, ge=1, description="earlier releases to the same requester and "
                                          "dataset each new release is compared with (differencing)")
    peer_answer_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="largest answer this node reads from "
                                       "a peer per job message; scaled up with the job's buckets or rows")
    # Multi-validator networks (node/network/governance.py): the validator set follows the registry.
    runs_validator: bool = Field(default=False, description="the chain node at rpc_url is a validator: this node votes "
                                 "the validator set from the registry (clique_propose on Clique, qbft votes on Besu)")
    validator_accounts: list[str] = Field(default_factory=list, description="accounts of the members that run a "
                                          "validator; one in good standing is voted in, any other voted out")
    validator_engine: Literal["clique", "qbft"] = Field(default="clique", description="the chain's consensus engine")
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    @field_validator("validator_accounts")
    @classmethod
    def _accounts(cls, value: list[str]) -> list[str]:
        from web3 import Web3

        bad = [a for a in value if not Web3.is_address(a)]
        if bad:
            raise ValueError(f"not an account address: {bad[0]!r}")
        return [Web3.to_checksum_address(a) for a in value]

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'node.db').resolve()}"

    def public_view(self) -> dict[str, Any]:
        """What is safe to print on start-up (no secrets live in settings, but URLs may carry credentials)."""
        data = self.model_dump(mode="json")
        for key in ("database_url", "rpc_url"):
            if data.get(key) and "@" in data[key]:
                data[key] = data[key].split("://")[0] + "://***@" + data[key].split("@", 1)[1]
        return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> NodeSettings:
    """Settings from a TOML file (relative paths resolved against the file's folder) plus environment."""
    path = Path(config) if config else None
    if path is not None:
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist", hint="pass --config with the node's TOML file")
        try:
            tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}", hint="fix the file") from None
    NodeSettings._toml_file = path
    try:
        settings = NodeSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"bad setting {where!r}: {first['msg']}", hint=f"fix it in {path or 'the environment'}") from None
    finally:
        NodeSettings._toml_file = None
    if path is not None:
        base = path.resolve().parent
        for field in ("home", "keys", "deployment", "tls_certfile", "tls_keyfile"):
            value = getattr(settings, field)
            if value is not None and not value.is_absolute():
                setattr(settings, field, base / value)
    return settings
