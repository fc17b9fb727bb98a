"""Import errbot's old Shelf files into the new store, once per namespace (no errbot import).

errbot's Shelf storage keeps namespace ``ns`` in ``<BOT_DATA_DIR>/ns.db`` (a ``shelve``
file). On a Python without gdbm that is ``dbm.dumb``: ``ns.db.dir`` (a text index of
``key, (offset, size)`` lines) and ``ns.db.dat`` (pickles at 512-byte aligned offsets).
dbm.dumb rewrites a value in place but writes its new size to the index only when the
shelf is synced or closed, so a bot killed after a change leaves an index whose size
cuts the new pickle short ("pickle data was truncated"). The value itself is on disk:
the reader here reads the whole 512-byte blocks the value may occupy and keeps the
complete pickle it finds there (pickles end with a STOP opcode).

Values are never unpickled here (their classes may not be importable yet): a value is
kept when ``pickletools`` finds a complete pickle, and stored as those bytes.
"""

from __future__ import annotations

import ast
import dbm
import logging
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ShelfRead", "complete_pickle", "import_shelf_once", "read_shelf", "shelf_base"]

log = logging.getLogger("errbot_storage.shelf_import")

#: dbm.dumb's value alignment.
DUMB_BLOCKSIZE = 512


class ImportTarget(Protocol):
    def count(self, namespace: str) -> int: ...
    def was_imported(self, namespace: str) -> bool: ...
    def import_namespace(self, namespace: str, rows: Any, source: str, skipped: int) -> int: ...


@dataclass
class ShelfRead:
    """What could be read from one shelf: complete pickles by key, and what could not."""

    source: str
    values: dict[str, bytes] = field(default_factory=dict)
    #: Keys whose value was found past the stale size of an unsynced index.
    recovered: list[str] = field(default_factory=list)
    #: Keys (or index lines) that could not be read, with the reason.
    skipped: list[str] = field(default_factory=list)
    #: False when the shelf could not be opened at all (nothing was read).
    readable: bool = True


def shelf_base(shelf_dir: Path, namespace: str) -> Path | None:
    """The shelf path errbot's Shelf storage used for *namespace*, if any of its files exist."""
    base = shelf_dir / f"{namespace}.db"
    candidates = [base] + [Path(f"{base}{ext}") for ext in (".dir", ".dat", ".bak", ".db")]
    return base if any(p.is_file() for p in candidates) else None


def complete_pickle(data: bytes) -> bytes | None:
    """The complete pickle at the start of *data* (up to its STOP opcode), or None."""
    try:
        for opcode, _arg, pos in pickletools.genops(data):
            if opcode.name == "STOP" and pos is not None:  # pos: always set for bytes
                return data[: pos + 1]
    except Exception:  # noqa: BLE001 - any parse failure means "not a complete pickle"
        return None
    return None


def read_shelf(base: Path) -> ShelfRead:
    """Read every readable value of the shelf at *base* (``<dir>/<namespace>.db``)."""
    if Path(f"{base}.dir").is_file() or Path(f"{base}.dat").is_file():
        return _read_dumb(base)
    return _read_with_dbm(base)


def _index_lines(base: Path) -> tuple[Path, list[str]]:
    index = Path(f"{base}.dir")
    backup = Path(f"{base}.bak")
    if not index.is_file() and backup.is_file():
        # dbm.dumb renames .dir to .bak before rewriting it: a kill in between leaves only .bak.
        index = backup
    if not index.is_file():
        return index, []
    return index, index.read_text(encoding="latin-1").splitlines()


def _parse_index_line(line: str) -> tuple[str, int, int]:
    key, (pos, size) = ast.literal_eval(line.strip())
    if not (isinstance(key, str) and isinstance(pos, int) and isinstance(size, int)):
        raise ValueError("not a key, (offset, size) line")
    return key.encode("latin-1").decode("utf-8"), pos, size


def _read_dumb(base: Path) -> ShelfRead:
    result = ShelfRead(source=str(base))
    index, lines = _index_lines(base)
    datfile = Path(f"{base}.dat")
    data = datfile.read_bytes() if datfile.is_file() else b""
    entries: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            key, pos, size = _parse_index_line(line)
        except (ValueError, SyntaxError, TypeError, UnicodeError, MemoryError):
            result.skipped.append(f"line {number} of {index.name}: unreadable index entry")
            continue
        entries[key] = (pos, size)  # a later line wins, as in dbm.dumb
    for key, (pos, size) in entries.items():
        value = complete_pickle(data[pos : pos + size])
        if value is None:
            blocks = max(1, -(-size // DUMB_BLOCKSIZE))
            value = complete_pickle(data[pos : pos + blocks * DUMB_BLOCKSIZE])
            if value is not None:
                result.recovered.append(key)
        if value is None:
            result.skipped.append(f"{key!r}: incomplete value")
        else:
            result.values[key] = value
    return result


def _read_with_dbm(base: Path) -> ShelfRead:
    """gdbm/ndbm shelves (written on another Python build): read through dbm if it can."""
    result = ShelfRead(source=str(base))
    try:
        db = dbm.open(str(base), "r")
    except Exception as exc:  # noqa: BLE001 - unknown format, missing module, corrupt file
        result.readable = False
        result.skipped.append(f"the whole shelf: {type(exc).__name__}: {exc}")
        return result
    with db:
        for raw_key in list(db.keys()):
            key = raw_key.decode("utf-8", errors="replace") if isinstance(raw_key, bytes) else raw_key
            try:
                value = complete_pickle(db[raw_key])
            except Exception as exc:  # noqa: BLE001
                result.skipped.append(f"{key!r}: {type(exc).__name__}")
                continue
            if value is None:
                result.skipped.append(f"{key!r}: incomplete value")
            else:
                result.values[key] = value
    return result


def import_shelf_once(target: ImportTarget, shelf_dir: Path, namespace: str) -> int:
    """Import *namespace*'s old shelf into *target* if never done and the namespace is empty.

    Returns the number of keys imported. Never raises: a failure is logged and the
    namespace starts as it is (the old files are left untouched, for a later try).
    """
    try:
        base = shelf_base(shelf_dir, namespace)
        if base is None or target.was_imported(namespace):
            return 0
        if target.count(namespace):
            log.warning(
                "Not importing the old shelf %s: namespace %r already has keys here.",
                base, namespace,
            )  # fmt: skip
            return 0
        read = read_shelf(base)
        if not read.readable:
            log.error("Could not read the old shelf %s: %s", base, "; ".join(read.skipped))
            return 0
        written = target.import_namespace(
            namespace, sorted(read.values.items()), read.source, len(read.skipped)
        )
    except Exception:
        log.exception(
            "Importing the old shelf of namespace %r failed; starting without it.", namespace
        )
        return 0
    _log_import(namespace, read, written)
    return written


def _log_import(namespace: str, read: ShelfRead, written: int) -> None:
    log.info(
        "Imported %d keys of namespace %r from the old shelf %s.", written, namespace, read.source
    )
    if read.recovered:
        log.warning(
            "Namespace %r: the old shelf's index was not synced (errbot was killed); "
            "recovered the latest value of %s.",
            namespace, ", ".join(repr(k) for k in read.recovered),
        )  # fmt: skip
    if read.skipped:
        log.error(
            "Namespace %r: skipped what the old shelf could not give back: %s",
            namespace, "; ".join(read.skipped),
        )  # fmt: skip
