"""Terminal output: Rich tables for people, ``--json`` for machines.

Every listing command prints either a table or, with ``--json``, a JSON
document whose shape is documented in ``docs/cli-json.md`` and kept stable.

Values from the store (errors, parameters, names) are printed as plain text,
never as Rich markup: a step error containing ``[/x]`` must print, not crash.
Use :func:`escape` when putting such a value into a markup string.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ctloop.core.secrets import mask_secrets

__all__ = [
    "NO_KEYS_EXPOSED", "SHORT_ID", "console", "err_console", "escape", "is_id_column",
    "is_wide", "print_json", "print_table", "set_wide", "short_id", "warn",
]

console = Console()
err_console = Console(stderr=True)

# Tables show ids by their first 12 characters, as the dashboard does; every command that
# takes an id accepts a unique prefix. `ctloop --wide ...` (or CTLOOP_WIDE=1) shows them whole.
SHORT_ID = 12
_HEX = frozenset("0123456789abcdef")
_wide = {"on": False}


def set_wide(on: bool) -> None:
    """Show whole ids and never shorten cells (the root ``--wide`` option)."""
    _wide["on"] = on


def is_wide() -> bool:
    """Whether ``--wide`` (or CTLOOP_WIDE=1) asked for whole ids and cells."""
    import os

    return _wide["on"] or os.environ.get("CTLOOP_WIDE", "") not in ("", "0")


def short_id(value: str) -> str:
    """A long hex id cut to :data:`SHORT_ID` characters (unless ``--wide``); other text as is."""
    if is_wide() or len(value) <= SHORT_ID or not set(value) <= _HEX:
        return value
    return value[:SHORT_ID]


NO_KEYS_EXPOSED = ("listening beyond this machine without API keys: anyone who can reach it "
                   "may use it; set [ctloop.serving.keys] or CTLOOP_SERVING_KEYS.")


def warn(message: str) -> None:
    """``warning: message`` on stderr, the message as plain text (``[ctloop.serving.keys]``
    prints as written, never as Rich markup)."""
    err_console.print(Text("warning: ", style="yellow") + Text(mask_secrets(message)))


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to stdout (no Rich markup, no wrapping)."""
    sys.stdout.write(mask_secrets(json.dumps(value, indent=2, default=str)) + "\n")


def is_id_column(header: str) -> bool:
    """Columns holding ids (``id``, ``run``, ``artifact id`` ...) are never truncated."""
    words = header.lower().replace("_", " ").split()
    return bool(words) and words[-1] in {"id", "run", "sha256", "hash"}


def _cell(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, Text) or hasattr(value, "__rich_console__"):
        return value
    return Text(mask_secrets(str(value)))  # plain text: brackets are not markup; no secrets


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """A simple Rich table; ``None`` cells print as a dash, strings verbatim, secrets as ``***``.

    Id columns show 12 characters (whole with ``--wide``), keep their width (other
    columns wrap first) and fold onto a second line rather than being cut.
    """
    ids = [is_id_column(c) for c in columns]
    cells = [[_cell(short_id(c) if ids[at] and isinstance(c, str) else c)
              for at, c in enumerate(row)] for row in rows]
    table = Table(title=mask_secrets(title) if title else title, header_style="bold",
                  show_lines=False)
    for at, column in enumerate(columns):
        if ids[at]:
            width = max([len(column)] + [Text(r[at]).cell_len if isinstance(r[at], str)
                                         else getattr(r[at], "cell_len", 0) for r in cells])
            table.add_column(column, no_wrap=True, overflow="fold", min_width=width)
        else:
            table.add_column(column)
    for row in cells:
        table.add_row(*row)
    if is_wide():  # the table's natural width, however narrow the terminal (for less -S, grep)
        natural = console.measure(table, options=console.options.update_width(10_000)).maximum
        Console(width=max(natural, console.width)).print(table)
        return
    console.print(table)
