"""Where a replay keeps its project: ``.ctloop/replays/NAME/`` (metadata, artifacts, log).

A backtest never moves the live champion: it runs in a sandbox project of its
own. The commands that look into it (``ctloop loop status NAME --replay``,
``ctloop runs list --replay NAME``, ...) read the same folder through
:func:`replay_settings`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ctloop.core.errors import NotFound
from ctloop.core.settings import Settings

__all__ = ["replay_home", "replay_settings", "sandbox_settings"]


def replay_home(settings: Settings, name: str) -> Path:
    """Where ``ctloop loop replay NAME`` keeps its sandbox project."""
    return settings.home / "replays" / name


def _at(settings: Settings, home: Path) -> Settings:
    return Settings(home=home, runner=settings.runner, max_workers=settings.max_workers,
                    cache=settings.cache, tables=settings.tables)


def sandbox_settings(settings: Settings, name: str) -> Settings:
    """A fresh project home for one replay of loop ``name`` (the old one is removed)."""
    home = replay_home(settings, name)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return _at(settings, home)


def replay_settings(settings: Settings, name: str) -> Settings:
    """Settings reading the sandbox of loop ``name``'s last replay (which must exist)."""
    home = replay_home(settings, name)
    if not (home / "metadata.db").is_file():
        found = sorted(p.name for p in (settings.home / "replays").glob("*")
                       if (p / "metadata.db").is_file())
        raise NotFound(f"No replay of loop {name!r} in {settings.home / 'replays'} "
                       f"(replays: {', '.join(found) or 'none'}); run `ctloop loop replay "
                       f"{name}` first.")
    return _at(settings, home)
