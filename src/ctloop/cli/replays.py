"""``--replay NAME``: point a reading command at a replay's sandbox project.

``ctloop loop replay NAME`` keeps its runs, models and log in
``.ctloop/replays/NAME/`` so a backtest never touches the live project. The
option makes ``runs list``, ``models list``, ``lineage`` and ``ui`` read that
folder, as ``CTLOOP_HOME=.ctloop/replays/NAME`` would (the store URLs of the
environment are set aside for the command: the sandbox has its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from ctloop.core.environ import environment

__all__ = ["ReplayOpt", "reading_replay"]

ReplayOpt = Annotated[str | None, typer.Option(
    "--replay", metavar="LOOP", help="Read the sandbox of `ctloop loop replay LOOP`.")]

_URLS = ("CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL", "CTLOOP_ONLINE_STORE_URL")


@contextmanager
def reading_replay(name: str | None) -> Iterator[None]:
    """Within the block, settings load the replay sandbox of loop ``name`` (nothing
    changes when ``name`` is ``None``); a missing replay is one line naming the others."""
    if name is None:
        yield
        return
    from ctloop.core.settings import load_settings
    from ctloop.loop.sandbox import replay_settings

    home = replay_settings(load_settings(), name).home
    with environment({"CTLOOP_HOME": str(home), **dict.fromkeys(_URLS)}):
        yield


def empty_note(what: str, command: str, replay: str | None) -> str:
    """Why a listing is empty, and where the replays' ``what`` are instead:
    ``no runs yet in .ctloop; the replay's are in .ctloop/replays/shop: ctloop runs list
    --replay shop``."""
    from ctloop.core.settings import load_settings

    settings = load_settings()
    if replay is not None:
        return f"no {what} in the replay of {replay} ({settings.home})"
    replays = settings.home / "replays"
    found = sorted(p.name for p in replays.glob("*") if (p / "metadata.db").is_file()) \
        if replays.is_dir() else []
    note = f"no {what} yet in {settings.home}"
    if found:
        note += (f"; the replay's are in {replays / found[0]}: ctloop {command} --replay "
                 f"{found[0]}")
    return note
