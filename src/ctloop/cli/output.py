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

from ctloop.core.secrets import mask_secrets

__all__ = ["console", "err_console", "print_json", "print_table"]

console = Console()
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to stdout (no Rich markup, no wrapping)."""
    sys.stdout.write(mask_secrets(json.dumps(value, indent=2, default=str)) + "\n")


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """A simple Rich table; ``None`` cells print as a dash, secrets as ``***``."""
    table = Table(title=mask_secrets(title) if title else title, header_style="bold",
                  show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if cell is None else mask_secrets(str(cell)) for cell in row))
    console.print(table)
