"""The SQLite store every albra process shares (runners, the Telegram bot, CLI commands).

``Store`` opens, validates and migrates the database; the modules beside it hold the typed access for one
concern each (control flags, journal, incidents, runners, ...). See docs/adr/0003-store-schema.md.
"""

from albra.store.db import (
    CorruptStoreError,
    NewerSchemaError,
    SCHEMA_VERSION,
    Store,
    StoreError,
    IntegrityReport,
)

__all__ = ["CorruptStoreError", "NewerSchemaError", "SCHEMA_VERSION", "Store", "StoreError", "IntegrityReport"]
