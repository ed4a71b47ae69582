"""The standard pipelines a loop declaration is turned into.

Two pipelines, both recorded in the metadata store like any other run:

``loop_ingest`` (every span)::

    land span ─► statistics ─► validate (pinned schema; drift vs the last valid span)
                                 │ error-level anomalies stop the run: the span is quarantined

``loop_train`` (when a trigger fires)::

    window of valid spans (as landed; feature refs a span lacks joined point in time)
      ─► training set + holdout (the newest span's last share, in event time)
      ─► train ─► evaluate candidate and champion on that holdout ─► gate
            └► infra check ─────────────────────────────────────────► push

``push`` moves ``champion`` (or ``challenger`` when the loop has a canary) to a
blessed candidate only. A user pipeline named by the loop's ``pipeline`` key
is called with the same parameters as ``loop_train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctloop.components.data_validation import schema, statistics, validate
from ctloop.components.training import evaluate, infra_check, push, train
from ctloop.core.errors import UserInputError
from ctloop.pipeline import Dataset, Output, component, pipeline

__all__ = ["land_span", "loop_ingest", "loop_train", "read_span", "window_set"]


def read_span(path: str, event_time: str, label: str, where: str = "") -> Any:
    """A span file as a frame sorted by event time; a missing key column is a one-line error."""
    import pandas as pd

    file = Path(path)
    try:
        frame = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file is not there for this process: infrastructure, not the data
    except Exception as exc:  # pyarrow and pandas raise many kinds for a broken file
        raise UserInputError(f"{where}span {file.stem!r} cannot be read ({file}): "
                             f"{type(exc).__name__}: {exc}".strip()) from None
    for key, column in (("event_time", event_time), ("label", label)):
        if column not in frame.columns:
            raise UserInputError(
                f"{where}span {file.stem!r} has no {key} column {column!r} (key {key!r}); "
                f"it has {list(frame.columns)[:12]}. Fix the file or the loop's {key!r} key.")
    # Microseconds, as every store keeps them (statistics refuse to drop nanoseconds).
    frame[event_time] = pd.to_datetime(frame[event_time], utc=True).astype("datetime64[us, UTC]")
    return frame.sort_values(event_time, kind="stable").reset_index(drop=True)


@component(version="1", cache=False)
def land_span(path: str, event_time: str, label: str, out: Output[Dataset]) -> dict[str, Any]:
    """Read a span as it landed, sorted by event time (never cached: a file may be replaced)."""
    frame = read_span(path, event_time, label)
    out.write(frame)
    out.metadata["source"] = path
    return {"rows": len(frame), "start": frame[event_time].min().isoformat(),
            "end": frame[event_time].max().isoformat()}


@component(version="2", cache=False)
def window_set(
    spans: list[str],
    event_time: str,
    label: str,
    holdout: float,
    train: Output[Dataset],
    evaluation: Output[Dataset],
    feature_refs: list[str] | None = None,
    feature_definitions: dict[str, Any] | None = None,
    landed: list[str] | None = None,
) -> dict[str, Any]:
    """The window's spans for training, minus the newest span's last ``holdout`` share
    (in event time), which both candidate and champion are judged on.

    ``landed`` (the ``land_span`` artifact of each span's ingest run, "" where unknown)
    makes the set read exactly what validation checked, hash-verified, and records
    those artifacts as this step's inputs, so lineage walks from a model back to the
    ingest runs. ``feature_definitions`` (see ``ctloop.loop.feature_join``) joins the
    refs a span lacks, point in time, into both parts.
    """
    import pandas as pd

    from ctloop.loop.feature_join import join_point_in_time

    ids = list(landed or [])
    if ids and len(ids) != len(spans):
        raise UserInputError(f"window_set got {len(ids)} landed artifacts for {len(spans)} "
                             "spans; pass one per span (\"\" where none).")
    frames = _read_window(spans, ids, event_time, label)
    if feature_definitions:
        frames = [join_point_in_time(f, feature_definitions, event_time,
                                     f"span {Path(p).stem!r}: ") for f, p in zip(
                                         frames, spans, strict=True)]
    newest = frames[-1]
    cut = round(len(newest) * (1 - holdout))
    if cut < 1 or cut >= len(newest):
        raise UserInputError(f"The newest span ({Path(spans[-1]).stem}) has {len(newest)} "
                             f"rows: too few to keep a {holdout:g} holdout.")
    train_frame = pd.concat([*frames[:-1], newest.iloc[:cut]], ignore_index=True)
    held = newest.iloc[cut:].reset_index(drop=True)
    train.write(train_frame)
    evaluation.write(held)
    names = [Path(p).stem for p in spans]
    train.metadata["spans"] = names
    values = train_frame[label]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype):
        train.metadata["label_mean"] = float(values.mean())
    else:  # classes by name: how many rows of each
        train.metadata["label_counts"] = {str(k): int(v) for k, v in
                                          values.value_counts().sort_index().items()}
    if ids:
        train.metadata["landed"] = {n: i for n, i in zip(names, ids, strict=True) if i}
        evaluation.metadata["landed"] = {names[-1]: ids[-1]} if ids[-1] else {}
    if feature_refs:  # feature-store lineage: models trained on this set use these features
        train.metadata["feature_refs"] = list(feature_refs)
    if feature_definitions:
        joined = list(feature_definitions.get("refs", []))
        train.metadata["joined_refs"] = evaluation.metadata["joined_refs"] = joined
    evaluation.metadata.update({"span": names[-1], "holdout": holdout})
    return {"spans": names, "train_rows": len(train_frame), "holdout_rows": len(held)}


def _read_window(spans: list[str], landed: list[str], event_time: str, label: str
                 ) -> list[Any]:
    """Each span as its ingest run landed it (when known), else read from its file."""
    if not any(landed):
        return [read_span(p, event_time, label) for p in spans]
    import pandas as pd

    from ctloop.metadata.base import EventRecord
    from ctloop.pipeline.context import current_step, open_stores

    store, artifacts = open_stores()
    try:
        frames = []
        for path, art_id in zip(spans, landed, strict=True):
            if not art_id:
                frames.append(read_span(path, event_time, label))
                continue
            art = store.get_artifact(art_id)
            frames.append(pd.read_parquet(artifacts.get(art.uri, art.sha256, name=art.id)))
        ctx = current_step()
        step = next((s for s in store.get_steps(ctx.run_id) if s.name == ctx.step),
                    None) if ctx else None
        if step is not None:  # the engine records inputs of this pipeline only: add these
            store.add_events([EventRecord(step.id, art_id, "input", f"landed:{Path(p).stem}")
                              for p, art_id in zip(spans, landed, strict=True) if art_id])
    finally:
        store.close()
    return frames


@pipeline(name="loop_ingest")
def loop_ingest(span: str, event_time: str, label: str, schema_path: str,
                reference: str = "") -> None:
    """Land one span, compute its statistics and validate it against the pinned schema."""
    landed = land_span(path=span, event_time=event_time, label=label)
    stats = statistics(data=landed)
    pinned = schema(stats=stats, pinned=schema_path)
    if reference:
        before = statistics(data=land_span(path=reference, event_time=event_time, label=label))
        validate(stats=stats, schema=pinned, reference=before)
    else:
        validate(stats=stats, schema=pinned)


@pipeline(name="loop_train")
def loop_train(
    spans: list[str],
    event_time: str,
    label: str,
    features: list[str],
    model_name: str,
    gate: dict[str, Any],
    holdout: float = 0.25,
    algorithm: str = "lightgbm",
    params: dict[str, Any] | None = None,
    trainer: str = "",
    seed: int = 0,
    alias: str = "champion",
    reason: str = "",
    n_boot: int = 50,
    feature_refs: list[str] | None = None,
    feature_definitions: dict[str, Any] | None = None,
    landed: list[str] | None = None,
    task: str = "",
    nullable: list[str] | None = None,
) -> None:
    """Train on a window of valid spans, judge against the champion, register, promote.

    ``task`` (binary, multiclass, regression; "" infers it from the label) and
    ``nullable`` (columns the model accepts nulls in although training saw none) go to
    the trainer: the standard one, or a user component that declares the parameter.
    """
    sets = window_set(spans=spans, event_time=event_time, label=label, holdout=holdout,
                      feature_refs=feature_refs or [],
                      feature_definitions=feature_definitions or {}, landed=landed or [])
    fit = _trainer(trainer) if trainer else train
    extra: dict[str, Any] = {"task": task} if task and "task" in fit.parameters else {}
    if nullable and "nullable" in fit.parameters:
        extra["nullable"] = list(nullable)
    if gate.get("costs") and {"costs", "holdout"} <= set(fit.parameters):
        # the threshold the gate judges the candidate at is the one it serves at
        extra.update(costs=gate["costs"], holdout=sets.outputs["evaluation"])
    model = fit(data=sets.outputs["train"], label=label, features=features,
                algorithm=algorithm, params=params or {}, seed=seed, **extra)
    judged = evaluate(candidate=model, data=sets.outputs["evaluation"], model_name=model_name,
                      gate=gate, n_boot=n_boot, alias="champion",
                      slice_columns=sorted({str(r["column"]) for r in gate.get("slices", [])}))
    served = infra_check(model=model, data=sets.outputs["evaluation"],
                         serving=gate.get("serving"))
    push(model=model, evaluation=judged.outputs["evaluation"],
         blessing=judged.outputs["blessing"], model_name=model_name, alias=alias,
         reason=reason).after(served)


def _trainer(ref: str) -> Any:
    """A user's training component from ``file.py:component``."""
    from ctloop.core.importing import import_file
    from ctloop.pipeline.component import ComponentDef

    target, _, name = ref.rpartition(":")
    module = import_file(Path(target), "ctloop_loop_trainer")
    found = getattr(module, name, None)
    if not isinstance(found, ComponentDef):
        raise UserInputError(f"{target} has no @component named {name!r} to train with.")
    return found
