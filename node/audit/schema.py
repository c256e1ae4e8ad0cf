"""Tables of the access-log index.

Every event is keyed by its chain position ``pos = block_number << 24 | log_index``: one integer that is
unique per log, sorts in chain order and is the SQLite rowid, so re-delivering a log is a no-op
(INSERT OR IGNORE) and every filtered query is a range scan on a ``(column, pos)`` index. A time range
becomes a ``pos`` range through ``audit_blocks`` (timestamps only grow with block numbers).

Addresses, dataset ids and transaction hashes are interned into small tables: a million access events
then cost about 100 bytes each plus their indexes, instead of four 66-character hex strings each.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, SmallInteger, String, Table, Text, text
from sqlalchemy.engine import Engine

from node.store.db import migrate

COMPONENT = "audit_index"
SCHEMA_VERSION = 1
POS_SHIFT = 24  # up to 16M logs per block
POS_MASK = (1 << POS_SHIFT) - 1

KIND_ACCESS = 1
KIND_DENIAL = 2
OUTCOMES = {"access": KIND_ACCESS, "denial": KIND_DENIAL}
OUTCOME_NAMES = {v: k for k, v in OUTCOMES.items()}

# Why an access was used outside its grant's window (audit_log.flag); 0 = within the window.
FLAG_BEFORE_WINDOW = 1
FLAG_AFTER_EXPIRY = 2
FLAG_AFTER_REVOCATION = 3
FLAG_NAMES = {FLAG_BEFORE_WINDOW: "before_not_before", FLAG_AFTER_EXPIRY: "after_expiry",
              FLAG_AFTER_REVOCATION: "after_revocation"}


# A chain position is block << 24 | log index: past block 127 it no longer fits 32 bits. SQLite's INTEGER
# is 64-bit (and INTEGER PRIMARY KEY is the fast rowid), PostgreSQL's is not: BIGINT there.
POS = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

cursor = Table(
    "audit_cursor", metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("last_block", BigInteger, nullable=False),  # every log up to and including this block is indexed
    Column("updated_at", BigInteger, nullable=False),
)

accounts = Table("audit_accounts", metadata, Column("id", Integer, primary_key=True),
                 Column("address", String(42), nullable=False, unique=True))
datasets = Table("audit_datasets", metadata, Column("id", Integer, primary_key=True),
                 Column("dataset_id", LargeBinary(32), nullable=False, unique=True))
transactions = Table("audit_txs", metadata, Column("id", Integer, primary_key=True),
                     Column("tx_hash", LargeBinary(32), nullable=False, unique=True))
blocks = Table("audit_blocks", metadata, Column("block_number", BigInteger, primary_key=True),
               Column("ts", BigInteger, nullable=False, index=True))

log = Table(
    "audit_log", metadata,  # AccessRecorded and DenialRecorded
    Column("pos", POS, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("requester", Integer, nullable=False),
    Column("owner", Integer, nullable=False),
    Column("purpose", SmallInteger, nullable=False),
    Column("dataset", Integer, nullable=False),
    Column("grant_id", BigInteger),  # access only
    Column("reason", SmallInteger),  # denial only
    Column("rows", BigInteger),  # access only
    Column("query_hash", LargeBinary(32), nullable=False),
    Column("tx", Integer, nullable=False),
    Column("flag", SmallInteger, nullable=False, server_default=text("0")),
    Index("audit_log_requester", "requester", "pos"),
    Index("audit_log_owner", "owner", "pos"),
    Index("audit_log_purpose", "purpose", "pos"),
    Index("audit_log_dataset", "dataset", "pos"),
    Index("audit_log_grant", "grant_id", "pos"),
    Index("audit_log_kind", "kind", "pos"),
    Index("audit_log_flagged", "flag", "pos", sqlite_where=text("flag != 0")),
)

events = Table(
    "audit_events", metadata,  # every other consortium event: authorization, governance, statistics, evidence
    Column("pos", POS, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("tx", Integer, nullable=False),
    Column("category", String(16), nullable=False),
    Column("event", String(40), nullable=False),
    Column("account", Integer),  # the subject: grant owner, member, job requester, evidence submitter
    Column("grant_id", BigInteger),
    Column("job_id", BigInteger),
    Column("args", Text, nullable=False),  # canonical JSON of the decoded arguments
    Index("audit_events_category", "category", "pos"),
    Index("audit_events_account", "account", "pos"),
    Index("audit_events_grant", "grant_id", "pos"),
    Index("audit_events_job", "job_id", "pos"),
)

grants = Table(
    "audit_grants", metadata,  # the window of every grant, to flag uses outside it while indexing
    Column("grant_id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", Integer, nullable=False),
    Column("grantee", Integer, nullable=False),
    Column("dataset", Integer, nullable=False),
    Column("purpose", SmallInteger, nullable=False),
    Column("not_before", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("granted_pos", POS, nullable=False),
    Column("revoked_pos", POS),
    Column("revoked_ts", BigInteger),
)

jobs = Table(
    "audit_jobs", metadata,  # statistics jobs, for the small-cohort and differencing checks
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("requester", Integer, nullable=False),
    Column("spec_hash", LargeBinary(32), nullable=False),
    Column("participants", Text, nullable=False),  # JSON list of addresses, sorted
    Column("min_cohort", Integer, nullable=False),
    Column("opened_ts", BigInteger, nullable=False),
    Column("opened_pos", POS, nullable=False),
    Column("state", String(10), nullable=False),
    Index("audit_jobs_requester", "requester", "opened_ts"),
)

daily = Table(
    "audit_daily", metadata,  # accesses and denials per (UTC day, requester, owner, purpose, outcome)
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("requester", Integer, primary_key=True, autoincrement=False),
    Column("owner", Integer, primary_key=True, autoincrement=False),
    Column("purpose", SmallInteger, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, primary_key=True, autoincrement=False),
    Column("events", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
)


def init_audit_store(engine: Engine) -> None:
    migrate(engine, COMPONENT, metadata, SCHEMA_VERSION)


def pos_of(block_number: int, log_index: int) -> int:
    return (block_number << POS_SHIFT) | log_index


def block_of(pos: int) -> int:
    return pos >> POS_SHIFT
