"""``ctloop init`` and ``ctloop demo``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, err_console, print_json
from ctloop.core.errors import UserInputError
from ctloop.core.settings import Settings, load_settings

_TOML = """\
# ctloop settings. Every value can also come from a CTLOOP_* environment variable.
[ctloop]
# home = ".ctloop"                        # state folder (metadata, artifacts, online store)
# metadata = "postgresql+psycopg://user@host/db"
# artifacts = "s3://bucket/prefix"
# online_store = "redis://localhost:6379/0"
runner = "local"                          # local | subprocess | dask | tcp://scheduler:8786
max_workers = 4
"""

_PIPELINE = '''\
"""An example pipeline: make data, fit a model, score it. Run: ctloop run pipeline.py"""

from ctloop.pipeline import Dataset, Input, Metrics, Model, Output, component, pipeline


@component
def make_data(rows: int, seed: int, out: Output[Dataset]) -> None:
    """A synthetic classification table (replace with your own ingestion)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = (x @ np.array([1.5, -2.0, 0.5]) + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    out.write(pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=y))


@component
def fit(data: Input[Dataset], model: Output[Model]) -> None:
    """Logistic regression on every column but the label."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    df = data.read()
    joblib.dump(LogisticRegression().fit(df.drop(columns="label"), df["label"]),
                model.path / "model.joblib")


@component
def score(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> float:
    """Accuracy on fresh data."""
    import joblib

    df = data.read()
    clf = joblib.load(model.path / "model.joblib")
    accuracy = float((clf.predict(df.drop(columns="label")) == df["label"]).mean())
    metrics.log("accuracy", accuracy)
    return accuracy


@pipeline
def example(rows: int = 2000):
    """Train on one sample, score on another."""
    model = fit(data=make_data(rows=rows, seed=0))
    score(data=make_data(rows=rows, seed=1), model=model)
'''

_README = """\
# {name}

A ctloop project.

    ctloop run pipeline.py          # run the example pipeline
    ctloop runs list                # what ran
    ctloop runs show RUN_ID         # steps, artifacts, errors

Settings live in `ctloop.toml`; state in `.ctloop/` (SQLite + local files).
"""



def _loop_toml(loop: str) -> str:
    from ctloop.cli.loop_template import loop_toml

    return loop_toml(loop, header="A continuous-training loop on generated weekly spans "
                     "(see docs/loop.md).", retrain_on=["decay", "drift"],
                     train='{ flavor = "lightgbm", params = { n_estimators = 50 } }',
                     drift_columns=["usage", "tenure", "spend"],
                     window_note="after decay: train only on the spans since the change")


_LOOP_README = """\
# {name}

A ctloop loop on eight generated weekly spans in `landing/`: the label's
dependence on `usage` flips in week 3, week 5 is defective, `tenure` and
`spend` shift from week 6.

    ctloop loop replay {loop} --baseline   # backtest the loop in event time
    ctloop loop run {loop} --once          # the live controller, one pass
    ctloop loop status {loop}

The loop is declared in `ctloop.toml`; docs/loop.md lists every key.
"""

_TEMPLATES = ("pipeline", "loop", "ci")


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="folder to create")],
    force: Annotated[bool, typer.Option(help="write into an existing, non-empty folder")] = False,
    template: Annotated[str, typer.Option(
        help="pipeline: an example pipeline; loop: a loop on generated spans; ci: a loop "
        "project with tests and GitHub/GitLab CI (test, replay-compare, image)")] = "pipeline",
) -> None:
    """Scaffold a project: ctloop.toml, an example pipeline (or loop) and a README."""
    if template not in _TEMPLATES:
        raise UserInputError(f"Unknown template {template!r}; use one of "
                             f"{', '.join(_TEMPLATES)}.")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", name):
        raise UserInputError(
            f"The project name {name!r} may use letters, digits, '.', '_', '-' and '/' only."
        )
    root = Path(name)
    if root.exists() and any(root.iterdir()) and not force:
        raise UserInputError(
            f"{root} exists and is not empty; choose another name or pass --force."
        )
    root.mkdir(parents=True, exist_ok=True)
    if template == "loop":
        _init_loop(root, force)
        return
    if template == "ci":
        _init_ci(root, force)
        return
    files = {"ctloop.toml": _TOML, "pipeline.py": _PIPELINE,
             "README.md": _README.format(name=root.name), ".gitignore": ".ctloop/\n"}
    for filename, text in files.items():
        path = root / filename
        if path.exists() and not force:
            continue
        path.write_text(text)
    console.print(f"[green]created[/] {root}/: {', '.join(files)}")
    console.print(f"next: cd {root} && ctloop run pipeline.py")


def _init_loop(root: Path, force: bool) -> None:
    from ctloop.loop.sample import write_sample_spans

    loop = re.sub(r"[^A-Za-z0-9_-]", "-", root.resolve().name) or "loop"
    files = {"ctloop.toml": _loop_toml(loop),
             "README.md": _LOOP_README.format(name=root.name, loop=loop),
             ".gitignore": ".ctloop/\n"}
    for filename, text in files.items():
        path = root / filename
        if path.exists() and not force:
            continue
        path.write_text(text)
    spans = write_sample_spans(root / "landing", spans=8, rows=800, change_at=3,
                               defective_at=5, shift_at=6)
    console.print(f"[green]created[/] {root}/: {', '.join(files)}, landing/ "
                  f"({len(spans)} spans)")
    console.print(f"next: cd {root} && ctloop loop replay {loop} --baseline")


def _init_ci(root: Path, force: bool) -> None:
    from ctloop.cli.ci_template import write_ci_project

    loop = re.sub(r"[^A-Za-z0-9_-]", "-", root.resolve().name) or "loop"
    written = write_ci_project(root, loop, force=force)
    console.print(f"[green]created[/] {root}/: {', '.join(written)}, landing/ (6 spans)")
    console.print(f"next: cd {root} && pytest -q tests && ctloop loop replay {loop}")


def _month_range(text: str) -> range:
    """``"4-12"`` or ``"5"`` -> a range of months."""
    first, _, last = text.partition("-")
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        lo, hi = 0, -1
    if not (3 <= lo <= hi <= 12):
        raise UserInputError(
            f"The '--months' option must be a month or range within 3-12, like 4-12 (the months "
            f"before the first train the first model). Got {text!r}."
        )
    return range(lo, hi + 1)


@app.command()
def demo(
    months: Annotated[str, typer.Option(help="months of 2013 to replay, e.g. 4-12")] = "4-12",
    defective_month: Annotated[int | None, typer.Option(
        help="land a broken batch in this month to watch validation quarantine it")] = None,
    train_window: Annotated[int | None, typer.Option(
        min=1, max=11, help="months of history to train on [default: 6, or all if fewer]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay NYC flights 2013 month by month through a declared continuous-training loop."""
    import time

    from ctloop.cli.loop import _Progress, _span_line
    from ctloop.examples.flights.demo import check_demo_options, missing_months, run_demo

    started = time.monotonic()
    replay = _month_range(months)
    check_demo_options(replay, defective_month)  # before the first run prepares its data
    settings = load_settings()
    todo = missing_months(settings, replay)
    if todo:
        _prepare(settings, replay, todo, quiet=as_json)
    with _Progress(not as_json and err_console.is_terminal) as progress:
        result = run_demo(settings, months=replay, defective_month=defective_month,
                          train_window=train_window, on_phase=progress.phase,
                          on_span=None if as_json else
                          lambda r: console.print(_span_line(r, "roc_auc"), highlight=False))
    if as_json:
        print_json({**result.replay, "reused": result.reused})
        return
    _outcome_table(result.replay)
    for line in demo_end_lines(result.replay, time.monotonic() - started, settings.home,
                               prepared=todo, reused=result.reused):
        console.print(line, highlight=False)


def _prepare(settings: Settings, months: range, todo: int, *, quiet: bool) -> None:
    """The first run's named phase, with a bar on a terminal (one line otherwise)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ctloop.examples.flights.demo import prepare

    title = f"preparing NYC flights 2013: {todo} monthly spans (first run only)"
    if quiet or not err_console.is_terminal:
        if not quiet:
            err_console.print(title, highlight=False)
        prepare(settings, months)
        return
    with Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("prepare", total=todo)
        prepare(settings, months, on_prepare=lambda done, _: bar.update(task, completed=done))
    err_console.print(f"prepared NYC flights 2013: {todo} monthly spans", highlight=False)


def demo_end_lines(replay: dict, elapsed: float, home: Path, *,  # type: ignore[type-arg]
                   prepared: int = 0, reused: str | None = None) -> list[str]:
    """What the demo leaves a newcomer with: what it reused, the one-number benefit of
    retraining with its interval, the time it took, and the commands that work next."""
    from ctloop.examples.flights.demo import MODEL_NAME, benefit

    metric = replay.get("metric") or "roc_auc"
    live, gain, low, high, n = benefit(replay, metric)
    lines = []
    if reused:
        lines.append(f"reused: the replay of {reused} (same months, data, schema and "
                     "window; the aliases stand where it left them): nothing replayed, no "
                     "alias moved.")
    if n:
        interval = (f", 95% interval {low:+.4f} to {high:+.4f}" if low is not None
                    and high is not None else "")
        lines.append(f"retraining pays: mean live {metric} {live:.4f}, {gain:+.4f} against "
                     f"the never-retrained first model ({n} months{interval}).")
    else:
        lines.append(f"retraining: no month was scored by both the served and the first "
                     f"model ({metric}).")
    minutes, seconds = divmod(round(elapsed), 60)
    took = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    lines.append(f"done in {took}" + (f", {prepared} monthly spans prepared (first run "
                                      "only)." if prepared else "."))
    lines.append(f"report: {home / 'demo' / 'report.html'}")
    lines += ["next:",
              "  ctloop ui                          the dashboard: runs, models, the loop",
              "  ctloop loop status flights         spans, champion, triggers",
              f"  ctloop models show {MODEL_NAME}@champion",
              "  ctloop runs list"]
    return lines


def _outcome_table(replay: dict) -> None:  # type: ignore[type-arg]
    """The month-by-month table: ten months and all nine columns in 80 columns."""
    from rich import box
    from rich.table import Table

    rows = [_outcome_row(s) for s in replay["spans"]]
    headers = ["month", "served", "live", "never retr.", "drift", "new", "old", "gate",
               "promoted"]
    table = Table(title="NYC flights 2013: the loop, month by month (ROC AUC)",
                  box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, padding=(0, 1),
                  collapse_padding=True, show_edge=False)
    for i, name in enumerate(headers):
        width = max(len(name), *(len(r[i]) for r in rows)) if rows else len(name)
        table.add_column(name, no_wrap=True, min_width=width,
                         justify="left" if name == "gate" else "right")
    styles = {"stopped": "red", "failed": "red", "refused": "yellow", "held": "yellow",
              "blessed": "green"}
    for row in rows:
        table.add_row(*(f"[{styles[c]}]{c}[/]" if c in styles else c for c in row))
    console.print(table)
    console.print("[dim]* bootstrap: trains the first champion. live: the champion on the "
                  "month's served flights (! = decayed). never retr.: the first champion on "
                  "the same flights. drift: share of watched serving features drifted from "
                  "the champion's training data (! = the drift trigger fired). new/old: "
                  "candidate and champion on the month's holdout, judged by the gate; held: "
                  "its metric is undefined there; stopped: quarantined by validation.[/]")


def _outcome_row(s: dict) -> list[str]:  # type: ignore[type-arg]
    """One month of the table: served, live and never-retrained AUC, drift, the gate."""
    gate = s.get("gate") or {}
    fired = {t["name"] for t in s["triggers"] if t["fired"]}
    live = (s.get("live") or {}).get("roc_auc")
    live_text = "-" if live is None else f"{live:.3f}" + ("!" if "decay" in fired else "")
    base = (s.get("baseline") or {}).get("roc_auc")
    drift = (s.get("drift") or {}).get("share")
    return [s["span"] + ("*" if s.get("bootstrap") else ""),
            _num(s.get("served_version") and f"v{s['served_version']}"), live_text,
            "-" if base is None else f"{base:.3f}",
            _pct(drift) + ("!" if "drift" in fired and drift is not None else ""),
            _num(gate.get("candidate")),
            _num(gate.get("champion")), _verdict(s["status"], gate),
            "-" if not s.get("promoted") else f"v{s['promoted']}"]


def _verdict(status: str, gate: dict) -> str:  # type: ignore[type-arg]
    if status != "valid":
        return "stopped"
    if not gate:
        return "-"
    if gate.get("error"):
        return "failed"
    return "blessed" if gate.get("blessed") else "held" if gate.get("held") else "refused"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: object) -> str:
    return "-" if value is None else str(value)
