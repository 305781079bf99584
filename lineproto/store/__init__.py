"""Persistence behind a small interface (``base.Store``); SQLite by default."""

from .base import Store, StorageError, StorageFull, StoreOpenError
from .sqlite import SYNC_MODES, SqliteStore, backup_database

__all__ = ["SYNC_MODES", "SqliteStore", "Store", "StorageError", "StorageFull", "StoreOpenError",
           "backup_database"]
