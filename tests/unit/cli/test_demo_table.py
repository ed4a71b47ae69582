"""The demo's month-by-month table: all ten months and all nine columns in 80 columns,
drift and decay firings marked, a held candidate named (issue 23.1 and 23.5)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ctloop.cli import project


def _span(month: int, **extra: object) -> dict[str, object]:
    """One month as the replay reports it, with the widest values a column can hold."""
    return {"span": f"2013-{month:02d}", "status": "valid", "bootstrap": month == 3,
            "served_version": None if month == 3 else 10, "promoted": 12 if month % 2 else None,
            "live": {"roc_auc": 0.65612}, "baseline": {"roc_auc": 0.6421},
            "drift": {"share": 1.0 if month == 11 else 0.5556},
            "triggers": [{"name": "decay", "fired": month == 4},
                         {"name": "drift", "fired": month in (5, 11)}],
            "gate": {"blessed": month % 2 == 1, "candidate": 0.7295, "champion": 0.6504},
            **extra}


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(project, "console", Console(file=out, width=80, color_system=None))
    return out


def test_ten_months_and_every_column_fit_80_columns(printed: io.StringIO) -> None:
    spans = [_span(m) for m in range(3, 12)]
    spans.append(_span(12, gate={"blessed": False, "held": True, "candidate": None,
                                 "champion": None}))
    project._outcome_table({"spans": spans})
    lines = printed.getvalue().splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), [x for x in lines if len(x) > 80]
    header = next(line for line in lines if line.split()[:1] == ["month"])
    assert header.split() == ["month", "served", "live", "never", "retr.", "drift", "new",
                              "old", "gate", "promoted"]
    rows = {line.split()[0]: line.split() for line in lines if line.strip()[:4] == "2013"}
    assert len(rows) == 10
    assert rows["2013-03*"][:2] == ["2013-03*", "-"] and rows["2013-03*"][-1] == "v12"
    assert rows["2013-04"][2] == "0.656!" and rows["2013-05"][4] == "56%!"  # decay, drift
    assert rows["2013-06"][4] == "56%" and rows["2013-11"][4] == "100%!"
    assert rows["2013-12"][-2:] == ["held", "-"]
    assert "! = the drift trigger fired" in " ".join(printed.getvalue().split())
