"""``!storage``: where errbot keeps its own settings (a bot plugin of the storage folder)."""

from __future__ import annotations

from typing import Any

from errbot import BotPlugin, botcmd

from errbot_storage.storage_plugin import SQLiteStoragePlugin

__all__ = ["StorageStatus", "storage_report"]


def storage_report(storage_plugin: Any) -> str:
    """A few lines on the bot's storage: engine, file, keys per namespace, shelf imports."""
    if not isinstance(storage_plugin, SQLiteStoragePlugin):
        return (
            f"errbot uses the {type(storage_plugin).__name__} storage, not SQLite: "
            'set STORAGE = "SQLite" (docs/STORAGE.md).'
        )
    db = storage_plugin.database
    if db is None:
        return f"Storage {storage_plugin.options.describe()}: no namespace is open."
    lines = [f"Storage: {db.describe()}"]
    lines += [f"- {namespace}: {count} keys" for namespace, count in db.namespaces()]
    for namespace, source, imported, skipped, at in db.imports():
        lines.append(
            f"Imported {namespace} from {source} at {at}: {imported} keys, {skipped} skipped"
        )
    return "\n".join(lines)


class StorageStatus(BotPlugin):
    """errbot's own storage (the SQLite storage plugin)."""

    @botcmd(admin_only=True)
    def storage(self, msg: Any, args: str) -> str:
        """Show errbot's storage: file, keys per namespace, imports from the old Shelf."""
        return storage_report(self._bot.storage_plugin)
