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
from ctloop.metadata.base import to_dict

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


@app.command()
def demo(
    train_months: Annotated[str, typer.Option(help="comma-separated months to train on")] = "1,2,3",
    eval_months: Annotated[str, typer.Option(help="comma-separated months to evaluate on")] = "4",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the NYC-flights 2013 reference scenario on the embedded defaults."""
    from ctloop.examples.flights.pipeline import flights_demo
    from ctloop.pipeline.api import make_engine

    def months(text: str, option: str) -> list[int]:
        try:
            values = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = []
        if not values or not all(1 <= m <= 12 for m in values):
            raise UserInputError(
                f"The '{option}' option must be comma-separated months 1-12. Got {text!r}."
            )
        return values

    params = {"train_months": months(train_months, "--train-months"),
              "eval_months": months(eval_months, "--eval-months")}
    settings = load_settings()
    progress = LiveProgress(err_console, enabled=not as_json and err_console.is_terminal)
    engine = make_engine(settings, observer=progress)
    result = engine.run(flights_demo, params,
                        source="ctloop.examples.flights.pipeline:flights_demo")
    if as_json:
        print_json({"run": to_dict(result.run),
                    "steps": [to_dict(s) for s in result.steps.values()]})
    if not result.ok:
        err_console.print(f"[red]demo failed:[/] {result.run.error}")
        raise typer.Exit(1)
    if not as_json:
        for step in result.steps.values():
            dur = f"{step.duration_s:.2f}s" if step.duration_s is not None else ""
            console.print(f"  {step.name:<12} {step.status.value:<10} {dur}")
        metrics = result.steps["evaluate"].outputs.get("return", {})
        console.print(
            f"[green]✔ demo run {result.run.id[:12]}[/]: trained on months "
            f"{params['train_months']}, evaluated on {params['eval_months']}: "
            f"ROC AUC {metrics.get('roc_auc')}, log loss {metrics.get('log_loss')}, "
            f"accuracy {metrics.get('accuracy')} on {metrics.get('rows')} flights"
        )
        console.print(f"state in {settings.home}; see: ctloop runs show {result.run.id[:12]}")
