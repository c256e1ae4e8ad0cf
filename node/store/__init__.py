"""The node's local store: SQLAlchemy Core over SQLite by default (a PostgreSQL URL works too)."""
