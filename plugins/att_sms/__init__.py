"""The AttSms plugin's package. Only ``errbot_plugin`` (beside it) and ``commands/`` import
errbot; every other folder is plain Python (see docs/DESIGN.md for the tree).

``SOURCE_MTIMES`` records the package's source files (subfolders included) as they were when
it was imported, so the plugin module can tell, when errbot re-executes it (``!plugin
reload``), whether the package's code changed on disk and must be imported again.
"""

from __future__ import annotations

from pathlib import Path


def source_mtimes() -> dict[str, float]:
    """Modification time of every ``.py`` file of the package, by path."""
    root = Path(__file__).resolve().parent
    return {str(path): path.stat().st_mtime for path in sorted(root.rglob("*.py"))}


SOURCE_MTIMES = source_mtimes()


def _escape_log_lines() -> None:
    from att_sms.ops.log_safety import install

    install()


_escape_log_lines()
