"""errbot's entry module for ``sqlite.plug``: the SQLite storage plugin and ``!storage``.

errbot reads ``sqlite.plug`` twice. As the storage plugin named in ``STORAGE``, found
through BOT_EXTRA_STORAGE_PLUGINS_DIR, it takes this module's StoragePluginBase class.
And because errbot also globs ``**/*.plug`` under BOT_EXTRA_PLUGIN_DIR (the repository
root) for bot plugins, it takes this module's BotPlugin class too; a .plug without one
would be logged as "Some plugins failed to load". Hence one class of each here.
"""

import sys
from pathlib import Path

# errbot loads this file by path; the package it belongs to is found from the repo root.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)

from errbot_storage.status_plugin import StorageStatus  # noqa: E402
from errbot_storage.storage_plugin import SQLiteStoragePlugin  # noqa: E402

__all__ = ["SQLiteStoragePlugin", "StorageStatus"]
