"""Tables print values verbatim, ids short (12 characters, whole with --wide), never cut."""

from __future__ import annotations

import pytest
from rich.console import Console

from ctloop.cli import output

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(width=60, record=True, force_terminal=False)
    monkeypatch.setattr(output, "console", console)
    return console


def test_id_columns_show_twelve_characters_never_cut_on_a_narrow_terminal(
    narrow: Console,
) -> None:
    output.print_table("runs", ["run", "pipeline", "error"],
                       [[RUN_ID, "a-very-long-pipeline-name-indeed", "x " * 40]])
    text = narrow.export_text()
    assert RUN_ID[:12] in text and RUN_ID[:13] not in text  # the prefix every lookup accepts
    assert "…" not in text.split(RUN_ID[:12])[0].splitlines()[-1]


def test_wide_keeps_every_character_of_an_id(
    narrow: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTLOOP_WIDE", "1")
    recorded = Console(width=60, record=True, force_terminal=False)
    monkeypatch.setattr(output, "Console", lambda width: recorded)
    output.print_table("runs", ["run", "pipeline"], [[RUN_ID, "a-long-pipeline-name"]])
    text = recorded.export_text()
    assert RUN_ID in text and "a-long-pipeline-name" in text


def test_only_long_hex_values_are_shortened() -> None:
    assert output.short_id(RUN_ID) == RUN_ID[:12]
    assert output.short_id("flights-delay-model") == "flights-delay-model"
    assert output.short_id("abc") == "abc"


def test_values_with_markup_brackets_print_verbatim(narrow: Console) -> None:
    output.print_table(None, ["artifact id", "error"],
                       [[RUN_ID, "[/bold] [red]x"], [None, "[/]"]])
    text = narrow.export_text()
    assert "[/bold] [red]x" in text and "[/]" in text and "│ -" in text


@pytest.mark.parametrize(("header", "is_id"), [("run", True), ("id", True), ("artifact id", True),
                                                ("run_id", True), ("sha256", True),
                                                ("pipeline", False), ("runner", False)])
def test_id_columns_are_recognised_by_header(header: str, is_id: bool) -> None:
    assert output.is_id_column(header) is is_id
