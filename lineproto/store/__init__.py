"""Persistence behind a small interface (``base.Store``); SQLite by default."""

from .base import StorageError, StorageFull, Store, StoreOpenError
from .sqlite import SYNC_MODES, SqliteStore, backup_database

__all__ = [
    "SYNC_MODES",
    "SqliteStore",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreOpenError",
    "backup_database",
]
