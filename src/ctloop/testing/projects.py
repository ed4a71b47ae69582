"""Copies of a finished project, so tests that read one scenario's state run it once.

A replay or ``ctloop demo`` costs tens of seconds; several test modules read the
same one. :func:`copy_project` copies the project's state folder (``.ctloop``)
and points every absolute path the metadata database recorded (artifact URIs,
lineage, step parameters) at the copy, so the copy reads and writes only itself
and the source stays as the run left it for the next copy.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoRun", "copy_project"]

_STATE = ".ctloop"


@dataclass(frozen=True)
class DemoRun:
    """One finished ``ctloop demo`` in ``home`` (left as it ran; tests take copies)."""

    home: Path
    code: int
    out: str
    err: str

    def copy_into(self, target: Path) -> None:
        """This run's project state in ``target``, its recorded paths pointing there."""
        copy_project(self.home, target)


def copy_project(source: Path, target: Path) -> None:
    """Copy ``source``'s ``.ctloop`` into ``target`` and rebase the recorded paths there.

    The metadata database must be the project's local SQLite file
    (``.ctloop/metadata.db``, the default); a project on a server database is not
    copied by copying a folder.
    """
    source, target = source.resolve(), target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / _STATE, target / _STATE)
    _rebase(target / _STATE / "metadata.db", str(source), str(target))


def _rebase(database: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every text column of every table (URIs hold it too)."""
    with sqlite3.connect(database) as db:
        tables = [row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old))
    db.close()
