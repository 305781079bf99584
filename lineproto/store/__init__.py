"""Persistence behind a small interface (``base.Store``); SQLite by default, PostgreSQL by URL."""

from .base import StorageError, StorageFull, Store, StoreOpenError
from .sqlite import SYNC_MODES, SqliteStore, SqlStore, backup_database

#: What ``--db`` starts with to name a PostgreSQL database (``postgres.py``; extra ``postgres``).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(db: str) -> bool:
    """True if ``db`` (``--db``) is a PostgreSQL URL, not an SQLite file."""
    return db.startswith(POSTGRES_SCHEMES)


def open_store(
    db: str,
    sync: str = "full",
    audit_key: str | None = None,
    audit_required: bool = False,
    rng=None,
    job_lease: float | None = None,
) -> SqlStore:
    """The store ``db`` names: a ``postgresql://`` URL (PostgresStore) or an SQLite file (SqliteStore).

    psycopg is imported only for a URL: without the extra, that is one line naming it (StartError).
    ``job_lease``: PostgreSQL's held-job lease in seconds (None: its default).
    """
    if is_postgres(db):
        from .postgres import JOB_LEASE, PostgresStore

        lease = JOB_LEASE if job_lease is None else job_lease
        return PostgresStore(
            db, sync=sync, rng=rng, audit_key=audit_key, audit_required=audit_required, job_lease=lease
        )
    return SqliteStore(db, sync=sync, rng=rng, audit_key=audit_key, audit_required=audit_required)


__all__ = [
    "POSTGRES_SCHEMES",
    "SYNC_MODES",
    "SqlStore",
    "SqliteStore",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreOpenError",
    "backup_database",
    "is_postgres",
    "open_store",
]
