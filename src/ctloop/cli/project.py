"""``ctloop init`` and ``ctloop demo``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, err_console, print_json
from ctloop.cli.progress import LiveProgress
from ctloop.core.errors import UserInputError
from ctloop.core.settings import load_settings

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


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="folder to create")],
    force: Annotated[bool, typer.Option(help="write into an existing, non-empty folder")] = False,
) -> None:
    """Scaffold a project: ctloop.toml, an example pipeline and a README."""
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
    files = {"ctloop.toml": _TOML, "pipeline.py": _PIPELINE,
             "README.md": _README.format(name=root.name), ".gitignore": ".ctloop/\n"}
    for filename, text in files.items():
        path = root / filename
        if path.exists() and not force:
            continue
        path.write_text(text)
    console.print(f"[green]created[/] {root}/: {', '.join(files)}")
    console.print(f"next: cd {root} && ctloop run pipeline.py")


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
        help="land a broken batch in this month to watch validation stop the run")] = None,
    train_window: Annotated[int, typer.Option(min=1, max=11,
                                              help="months of history to train on")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay NYC flights 2013 month by month through the continuous-training loop."""
    from ctloop.examples.flights.demo import MonthOutcome, run_demo
    from ctloop.pipeline.api import make_engine

    replay = _month_range(months)
    settings = load_settings()
    progress = LiveProgress(err_console, enabled=not as_json and err_console.is_terminal,
                            transient=True)
    engine = make_engine(settings, observer=progress)

    def report(o: MonthOutcome) -> None:
        if as_json:
            return
        if o.served:
            state = "[red]decayed[/]" if o.decay_fired else "ok"
            drift = "[yellow]drifted[/]" if o.serving_drift_fired else "stable"
            console.print(
                f"[bold]2013-{o.month:02d}[/] served {o.served} flights with v{o.served_version}: "
                f"live AUC {o.live_auc} (evaluated {o.live_baseline}, {state}); "
                f"features {drift} ({_pct(o.serving_drift)} drifted)", highlight=False)
        label = "bootstrap" if o.trigger == "bootstrap" else f"batch 2013-{o.month:02d} landed"
        if o.status != "succeeded" and not o.stopped_by_validation:
            console.print(f"  [red]✘ {label}[/]: run {o.run_id[:12]} failed: {o.error}",
                          highlight=False)
            return
        if o.stopped_by_validation:
            console.print(f"  [red]✘ {label}[/]: refused by validation; the champion stays "
                          f"v{o.champion_version}:")
            for line in o.anomalies[:8]:
                console.print(f"      {line}", markup=False, highlight=False)
            return
        refused = f"[yellow]refused[/] ({'; '.join(o.failed_rules)})"
        gate = "[green]blessed[/]" if o.blessed else refused
        console.print(
            f"  [green]✔ {label}[/]: retrained, candidate AUC {o.candidate_auc} vs champion "
            f"{o.champion_auc}: {gate}; champion v{o.champion_version}  "
            f"[dim]({o.seconds}s, {o.cached_steps} cached)[/]", highlight=False)

    outcomes = run_demo(settings, engine, months=replay, defective_month=defective_month,
                        train_window=train_window, on_month=report)
    if as_json:
        from dataclasses import asdict

        print_json({"months": [asdict(o) for o in outcomes]})
        return
    _outcome_table(outcomes)
    report_path = settings.home / "demo" / "report.html"
    console.print(f"report: {report_path}")
    console.print("next: ctloop models show flights-delay@champion · ctloop runs list · "
                  "ctloop features list")


def _outcome_table(outcomes: list) -> None:  # type: ignore[type-arg]
    """The month-by-month table, compact enough for an 80-column terminal."""
    from rich import box
    from rich.table import Table

    rows = []
    for o in outcomes:
        gate = "-" if o.blessed is None else ("blessed" if o.blessed else "refused")
        if o.stopped_by_validation:
            gate = "stopped"
        elif o.status != "succeeded":
            gate = "failed"
        live = "-" if o.live_auc is None else f"{o.live_auc:.3f}" + ("!" if o.decay_fired else "")
        month = f"2013-{o.month:02d}" + ("*" if o.trigger == "bootstrap" else "")
        rows.append([month, _num(o.served), live, _pct(o.serving_drift),
                     _num(o.candidate_auc), _num(o.champion_auc), gate,
                     "-" if o.champion_version is None else f"v{o.champion_version}"])
    headers = ["month", "served", "live AUC", "drift", "AUC new", "AUC old", "gate",
               "champion"]
    table = Table(title="NYC flights 2013: the loop, month by month", box=box.SIMPLE_HEAD,
                  header_style="bold", pad_edge=False, padding=(0, 1), show_edge=False)
    for i, name in enumerate(headers):
        width = max(len(name), *(len(r[i]) for r in rows)) if rows else len(name)
        table.add_column(name, no_wrap=True, min_width=width,
                         justify="left" if name == "gate" else "right")
    styles = {"stopped": "red", "failed": "red", "refused": "yellow", "blessed": "green"}
    for row in rows:
        table.add_row(*(f"[{styles[c]}]{c}[/]" if c in styles else c for c in row))
    console.print(table)
    console.print("[dim]* bootstrap: trains the first champion. live AUC: the champion on the "
                  "month's served flights (! = decayed). drift: share of watched serving "
                  "features drifted from its training data. AUC new/old: candidate and "
                  "champion on the month, judged by the gate; stopped: the batch failed "
                  "validation.[/]")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: object) -> str:
    return "-" if value is None else str(value)
