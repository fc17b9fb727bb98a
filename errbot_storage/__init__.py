"""errbot's own settings in SQLite: a storage plugin (``STORAGE = "SQLite"``).

errbot's default Shelf storage can be left corrupt when the bot is killed (see
docs/STORAGE.md). ``sqlite_kv`` is the store (no errbot import), ``postgres_kv`` the same
tables on PostgreSQL (STORAGE_CONFIG ``dsn``: replicas share errbot's settings),
``shelf_import`` the one-time import of an old Shelf, ``storage_plugin`` errbot's classes,
``status_plugin`` the ``!storage`` command; ``sqlite.plug`` + ``sqlite_storage`` are what
errbot loads.
"""
