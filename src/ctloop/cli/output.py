"""Terminal output: Rich tables for people, ``--json`` for machines.

Every listing command prints either a table or, with ``--json``, a JSON
document whose shape is documented in ``docs/cli-json.md`` and kept stable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "err_console", "print_json", "print_table"]

console = Console()
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to stdout (no Rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """A simple Rich table; ``None`` cells print as a dash."""
    table = Table(title=title, header_style="bold", show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    console.print(table)
