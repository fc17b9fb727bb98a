"""Files and directories only the bot's own user may read: 0600 and 0700.

The store holds phone numbers, SMS texts and the audit log. Whatever the process's umask,
a directory the plugin creates is 0700 and a database file 0600 before SQLite writes a
byte; SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's mode.
Files and the plugin's own directory left by an older version are tightened too.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dirs(path: Path, *, tighten: bool = True) -> None:
    """Create ``path`` and any missing parent as 0700; with ``tighten`` an existing ``path``
    is made 0700 too (a directory of the bot's own, not one it was given)."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(directory, DIR_MODE)
    if tighten:
        os.chmod(path, DIR_MODE)


def private_sqlite_file(path: Path) -> None:
    """Create the database file (empty) as 0600 if missing; make it and its side files 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in SQLITE_SIDE_FILES:
        try:
            os.chmod(f"{path}{suffix}", FILE_MODE)
        except FileNotFoundError:
            pass
