"""errbot's storage-plugin classes on the SQLite key-value store.

errbot opens one storage per namespace (``core``, ``repomgr``, ``text_backend``, one per
plugin) from many threads. Every namespace of a bot shares one database handle; it is
opened with the first namespace and closed with the last. Values are pickled, as errbot's
Shelf does; every ``set`` and ``remove`` is committed before it returns.

STORAGE_CONFIG options (all optional):

* ``path``: the SQLite file; relative paths are under BOT_DATA_DIR.
  Default ``<BOT_DATA_DIR>/storage.sqlite3``.
* ``synchronous``: ``NORMAL`` (default: survives any kill of the bot) or ``FULL``
  (also survives a power cut, one fsync per write).
* ``dsn``: a ``postgresql://`` URL (no password: ``$ATT_DATABASE_PASSWORD``) to keep the
  settings in PostgreSQL instead, shared by the bot's replicas (``postgres_kv``); then
  ``path`` and ``synchronous`` do not apply.
* ``tls`` (with ``dsn``): ``verify`` (default: to another machine only
  ``sslmode=verify-full``/``verify-ca``), ``require`` or ``off``; see ``pg_tls``.
* ``basedir``: where the old Shelf files are (Shelf's own option). Default BOT_DATA_DIR.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errbot.storage.base import StorageBase, StoragePluginBase

from errbot_storage.pg_tls import check_tls
from errbot_storage.postgres_kv import PostgresKV, check_dsn
from errbot_storage.shelf_import import import_shelf_once
from errbot_storage.sqlite_kv import SQLiteKV, StorageConfigError

__all__ = ["SQLiteStorage", "SQLiteStoragePlugin", "StorageOptions", "parse_options"]

log = logging.getLogger("errbot_storage")

DEFAULT_FILE = "storage.sqlite3"
#: Protocol 4 is read by every supported Python (3.4+).
PICKLE_PROTOCOL = 4
KNOWN_OPTIONS = frozenset({"path", "synchronous", "basedir", "dsn", "tls"})
SQLITE_ONLY = frozenset({"path", "synchronous"})

#: Either engine's key-value store (same methods).
KV = SQLiteKV | PostgresKV


@dataclass(frozen=True)
class StorageOptions:
    path: Path
    synchronous: str
    shelf_dir: Path
    dsn: str = ""

    def describe(self) -> str:
        return "PostgreSQL (STORAGE_CONFIG dsn)" if self.dsn else f"SQLite {self.path}"


def parse_options(config: Mapping[str, Any] | None, data_dir: Path) -> StorageOptions:
    """STORAGE_CONFIG checked and completed with the defaults; StorageConfigError if wrong."""
    config = dict(config or {})
    unknown = sorted(set(config) - KNOWN_OPTIONS)
    if unknown:
        raise StorageConfigError(
            f"unknown STORAGE_CONFIG options {unknown}; known: {sorted(KNOWN_OPTIONS)}"
        )
    path = data_dir / Path(config.get("path", DEFAULT_FILE)).expanduser()
    synchronous = str(config.get("synchronous", "NORMAL")).upper()
    shelf_dir = data_dir / Path(config.get("basedir", data_dir)).expanduser()
    dsn = ""
    if "dsn" in config:
        dsn = check_dsn(config["dsn"])
        both = sorted(SQLITE_ONLY & set(config))
        if both:
            raise StorageConfigError(
                f"STORAGE_CONFIG {both} are SQLite options; with 'dsn' (PostgreSQL) remove them"
            )
        dsn = check_tls(dsn, config.get("tls", "verify"), os.environ)
    elif "tls" in config:
        raise StorageConfigError("STORAGE_CONFIG 'tls' applies to a 'dsn' (PostgreSQL) only")
    return StorageOptions(path=path, synchronous=synchronous, shelf_dir=shelf_dir, dsn=dsn)


def open_database(options: StorageOptions) -> KV:
    """The one place that picks the engine: PostgreSQL with a ``dsn``, else SQLite."""
    if options.dsn:
        return PostgresKV(options.dsn)
    return SQLiteKV(options.path, options.synchronous)


class SQLiteStorage(StorageBase):
    """One namespace of the shared database, as errbot's StorageBase."""

    def __init__(self, namespace: str, db: KV, release: Callable[[], None]) -> None:
        self.namespace = namespace
        self._db = db
        self._release: Callable[[], None] | None = release

    def get(self, key: str) -> Any:
        value = self._db.get(self.namespace, key)
        if value is None:
            raise KeyError(f"{key} doesn't exist.")
        return pickle.loads(value)  # noqa: S301 - the bot's own data, as with Shelf

    def set(self, key: str, value: Any) -> None:
        self._db.put(self.namespace, key, pickle.dumps(value, protocol=PICKLE_PROTOCOL))

    def remove(self, key: str) -> None:
        if not self._db.delete(self.namespace, key):
            raise KeyError(f"{key} doesn't exist.")

    def len(self) -> int:
        return self._db.count(self.namespace)

    def keys(self) -> list[str]:
        return self._db.keys(self.namespace)

    def close(self) -> None:
        """Nothing to flush (every write is committed); gives the shared handle back."""
        release, self._release = self._release, None
        if release is not None:
            release()


class SQLiteStoragePlugin(StoragePluginBase):
    """errbot's ``STORAGE = "SQLite"``: a factory of namespaces on one database (a SQLite
    file, or PostgreSQL when STORAGE_CONFIG has a ``dsn``)."""

    def __init__(self, bot_config: Any) -> None:
        super().__init__(bot_config)
        self.options = parse_options(self._storage_config, Path(bot_config.BOT_DATA_DIR))
        self._lock = threading.Lock()
        self._db: KV | None = None
        self._open_count = 0
        log.info("errbot storage: %s", self.options.describe())

    @property
    def database(self) -> KV | None:
        """The open database, or None when no namespace is open."""
        return self._db

    def open(self, namespace: str) -> SQLiteStorage:
        with self._lock:
            if self._db is None:
                self._db = open_database(self.options)
            self._open_count += 1
            import_shelf_once(self._db, self.options.shelf_dir, namespace)
            return SQLiteStorage(namespace, self._db, self._release)

    def _release(self) -> None:
        with self._lock:
            self._open_count -= 1
            if self._open_count <= 0 and self._db is not None:
                self._db.close()
                self._db = None
                self._open_count = 0
