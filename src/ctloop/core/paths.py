"""Checks of the paths and stores a command is given, light enough to run first.

A mistyped file name or a project with nothing stored yet must answer in one line
before pandas, pyarrow or SQLAlchemy are imported (seconds on a loaded machine);
these checks use the standard library only. The data readers call the same
functions, so the rule and its message have one home.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from ctloop.core.errors import NotFound, UserInputError

__all__ = [
    "FORMATS",
    "batch_paths",
    "denied",
    "empty_sqlite_store",
    "require_input",
    "require_path",
    "require_stored",
    "require_writable",
]

# Suffix -> format of the files batch scoring reads and writes.
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def require_path(path: Path) -> Path:
    """``path`` if it exists (file or folder); else the one line naming it."""
    if not path.exists():
        raise NotFound(f"No file at {path}; check the path.")
    return path


def require_input(path: Path) -> Path:
    """``path`` if it is a file to read rows from; else the one line naming it."""
    if not path.is_file():
        raise NotFound(f"The input file {path} does not exist.")
    return path


def _format(path: Path, role: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(
            f"The {role} file {path} must end in .parquet, .pq or .csv "
            f"(got {path.suffix or 'no suffix'})."
        )
    return fmt


def batch_paths(source: Path, target: Path, overwrite: bool) -> tuple[str, str]:
    """The formats of a batch scoring's input and output, once both paths are usable."""
    in_fmt, out_fmt = _format(source, "input"), _format(target, "output")
    require_input(source)
    if target.exists() and not overwrite:
        raise UserInputError(f"The output {target} already exists; pass --overwrite to replace it.")
    if not target.parent.is_dir():
        raise NotFound(f"The output folder {target.parent} does not exist; create it first.")
    return in_fmt, out_fmt


def empty_sqlite_store(url: str) -> Path | None:
    """The file of a SQLite store URL that does not exist yet (nothing was ever stored,
    so every lookup misses); ``None`` for other databases, in-memory and existing files."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            raw = unquote(url[len(prefix):].split("?", 1)[0])
            if not raw or raw == ":memory:":
                return None
            path = Path(raw)
            return None if path.exists() else path
    return None


def require_stored(url: str, what: str, key: str) -> None:
    """Raise the not-found line of ``key`` when the store at ``url`` was never written
    (a SQLite file not there yet), without loading a database driver."""
    missing = empty_sqlite_store(url)
    if missing is None:
        return
    if what == "model":
        raise NotFound(f"No model named {key!r}; registered models: none "
                       f"(nothing stored yet in {missing.parent}).")
    raise NotFound(f"No {what} with id {key!r}: no {what}s yet in {missing.parent}.")


def _user(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def denied(exc: PermissionError) -> UserInputError:
    """The one line for a file or folder this user may not use."""
    import os

    where = exc.filename or "a file"
    user = _user(os.getuid()) if hasattr(os, "getuid") else "this user"
    return UserInputError(f"Permission denied on {where} for {user}: give this user access "
                          "(chown or chmod) or run as the owner of that folder.")


def require_writable(folder: Path, role: str) -> Path:
    """``folder`` if this process can create files in it (made when missing); else one line
    naming the folder, this user and its owner, and what to do.

    A state volume mounted as root and used by a non-root container otherwise fails far
    from the cause: SQLite says "unable to open database file", which reads as a
    connection problem.
    """
    import os

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    target = folder if folder.exists() else existing
    if target.is_dir() and os.access(target, os.W_OK | os.X_OK):
        return folder
    if not hasattr(os, "getuid"):  # no owners to name (Windows)
        raise UserInputError(f"The {role} {folder} is not writable; choose another folder.")
    uid = os.getuid()
    owner = _user(target.stat().st_uid) if target.exists() else "nobody"
    raise UserInputError(
        f"The {role} {target} is not writable by {_user(uid)}: it belongs to {owner}. "
        f"Give it to this user (chown -R {uid} {target}) or run as its owner.")
