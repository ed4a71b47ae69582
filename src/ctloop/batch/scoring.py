"""Batch prediction over a parquet or CSV file, in bounded memory, recorded with lineage.

``predict_file`` streams the input in Arrow record batches (parquet row
groups / CSV blocks), treats every chunk as the service treats a request
(missing model inputs filled from the online feature store, then checked
against the model's signature), appends ``score`` and, for a binary classifier,
``decision`` (1 at or above ``LoadedModel.decision_threshold``) — a multiclass
model adds ``label`` and one ``score_<class>`` probability column per class
instead — and writes the chunk out before reading the next one. Memory is one chunk, whatever the
file's size.

The output is written under a temporary name and renamed when complete, so
a failure never leaves half a file, and an existing output is replaced only
with ``overwrite``. The work is recorded in the metadata store as a run with
one ``predict`` step that read the input (a ``Dataset`` by reference, with its
sha256) and the model version's artifact, and wrote the output: ``ctloop
lineage OUTPUT_ID`` walks from the predictions back to the training data.

With a ``prediction_log`` every scored row is also appended to it (protocol
``batch``, request id ``<run id>-<row number>``, the caller's id from
``id_column`` as ``row_id`` for joining labels later), chunk by chunk and
synchronously, so monitors see batch traffic like served traffic.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ctloop.batch.checks import OnInvalid, check_on_invalid, invalid_rows
from ctloop.core.arrays import Floats
from ctloop.core.clock import instant_or_now, utc_now
from ctloop.core.errors import CtloopError, UserInputError
from ctloop.core.hashing import hash_file
from ctloop.core.paths import FORMATS, batch_paths
from ctloop.metadata import new_id
from ctloop.metadata.base import (
    ArtifactRecord,
    EventRecord,
    RunLineageStore,
    RunRecord,
    RunStatus,
    RunUpdate,
    StepRecord,
    StepStatus,
)
from ctloop.models.flavors import LoadedModel
from ctloop.registry import ModelRegistry, parse_ref
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.pool import feature_refs_of
from ctloop.serving.scoring.answer import answer_of, classes_of, kind_of
from ctloop.serving.scoring.features import assemble, column_of, entity_keys

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.features import FeatureStore
    from ctloop.requestlog.records import PredictionLog

__all__ = ["FORMATS", "BatchResult", "BatchSummary", "predict_file", "resolve_ref"]

SCORE, DECISION, LABEL, INVALID = "score", "decision", "label", "invalid"
_CSV_BLOCK = 8 << 20  # bytes of CSV per chunk
_ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
}


class BatchSummary(TypedDict):
    """A batch prediction as ``ctloop predict --json`` prints it (:meth:`BatchResult.to_dict`)."""

    model: str
    version: int
    rows: int
    output: str
    seconds: float
    rows_per_second: int | None
    run_id: str
    input_artifact_id: str
    output_artifact_id: str
    decision_threshold: float | None
    positives: int | None
    looked_up: list[str]
    invalid: int


@dataclass(frozen=True)
class BatchResult:
    """What a batch prediction wrote and where it is recorded."""

    model: str
    version: int
    rows: int
    output: Path
    seconds: float
    run_id: str
    input_artifact_id: str
    output_artifact_id: str
    threshold: float | None
    positives: int | None = None
    missing_filled: list[str] = field(default_factory=list)
    invalid: int = 0  # rows the service would refuse (skipped or flagged)

    def to_dict(self) -> BatchSummary:
        return {
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds > 0 else None,
            "run_id": self.run_id,
            "input_artifact_id": self.input_artifact_id,
            "output_artifact_id": self.output_artifact_id,
            "decision_threshold": self.threshold,
            "positives": self.positives,
            "looked_up": self.missing_filled,
            "invalid": self.invalid,
        }


def resolve_ref(text: str, default_alias: str = "champion") -> str:
    """``NAME`` means the alias the service answers with; ``NAME@ALIAS`` and ``NAME:V`` as given."""
    ref = parse_ref(text)
    if ref.version is None and ref.alias is None:
        return f"{ref.name}@{default_alias}"
    return str(ref)


class _Reader:
    """Record batches of a parquet or CSV file, with its schema and (if known) row count."""

    def __init__(self, path: Path, fmt: str, model: LoadedModel, chunk_rows: int) -> None:
        self.path = path
        self.total: int | None = None
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                file = pq.ParquetFile(path)
                self.schema = file.schema_arrow
                self.total = file.metadata.num_rows
                self._batches: Iterator[pa.RecordBatch] = file.iter_batches(batch_size=chunk_rows)
            else:
                from pyarrow import csv

                types = {
                    c.name: _ARROW_TYPES[c.type]
                    for c in model.signature.inputs
                    if c.type in _ARROW_TYPES
                }
                reader = csv.open_csv(
                    path,
                    read_options=csv.ReadOptions(block_size=_CSV_BLOCK),
                    convert_options=csv.ConvertOptions(column_types=types),
                )
                self.schema = reader.schema
                self._batches = iter(reader)
        except (pa.ArrowException, OSError) as exc:
            raise UserInputError(f"Cannot read {path} as {fmt}: {_arrow_text(exc)}") from None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = next(self._batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise UserInputError(f"Cannot read {self.path}: {_arrow_text(exc)}") from None
            if batch.num_rows:
                yield batch


def _arrow_text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _BatchSink(Protocol):
    """What ``_Writer`` needs of pyarrow's ``ParquetWriter`` and ``csv.CSVWriter``."""

    def write_batch(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


class _Writer:
    """Writes record batches to a temporary file beside ``target``; ``commit`` renames it."""

    def __init__(self, target: Path, fmt: str) -> None:
        self.target = target
        self.fmt = fmt
        self.tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._writer: _BatchSink | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.tmp, batch.schema)
            else:
                from pyarrow import csv

                self._writer = csv.CSVWriter(self.tmp, batch.schema)
        self._writer.write_batch(batch)

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # already failing: removing the partial file is what matters
                pass
        self.tmp.unlink(missing_ok=True)


def _check_columns(
    reader: _Reader, model: LoadedModel, refs: tuple[str, ...], store: FeatureStore | None
) -> list[str]:
    """Columns the model needs that the file lacks (to be looked up), or a clear error."""
    names = set(reader.schema.names)
    taken = sorted(set(output_columns(model)) & names)
    if taken:
        raise UserInputError(
            f"The input {reader.path} already has column(s) {taken}, which the output adds; "
            "rename them first."
        )
    lacking = [c for c in model.signature.columns if c not in names]
    if not lacking:
        return []
    fillable = {column_of(r, lacking) for r in refs} if store is not None else set()
    unresolved = [c for c in lacking if c not in fillable]
    if unresolved:
        hint = (
            "no feature store is configured to look them up"
            if store is None
            else "none of the model's feature refs supplies them"
        )
        raise UserInputError(
            f"The input {reader.path} is missing column(s) {unresolved} that the model needs and "
            f"{hint}. The model reads {model.signature.columns}."
        )
    return lacking


def output_columns(model: LoadedModel, width: int | None = None) -> list[str]:
    """The columns scoring adds: ``score`` (+ ``decision`` for binary), or for multiclass
    ``label`` and ``score_<class>`` per class, in the model's class order."""
    kind = kind_of(model)
    if kind == "multiclass":
        return [LABEL, *(f"{SCORE}_{c}" for c in classes_of(model, kind, width))]
    return [SCORE, DECISION] if kind == "binary" else [SCORE]


def _predict_valid(model: LoadedModel, frame: pd.DataFrame, bad: dict[int, str]) -> Floats:
    """Scores of ``frame``'s rows; rows in ``bad`` are not shown to the model (NaN)."""
    if not bad:
        return model.predict(frame, what="The input rows")
    keep = np.ones(len(frame), dtype=bool)
    keep[list(bad)] = False
    scored = model.predict(frame[keep], what="The input rows")
    out = np.full((len(frame), *scored.shape[1:]), np.nan)
    out[keep] = scored
    return out


def _score_batch(
    batch: pa.RecordBatch,
    model: LoadedModel,
    refs: tuple[str, ...],
    store: FeatureStore | None,
    now: str | None,
    threshold: float | None,
    *,
    on_invalid: OnInvalid = "fail",
    offset: int = 0,
    looked_up: Collection[str] = (),
) -> _Scored:
    started = time.perf_counter()
    frame = batch.to_pandas()
    try:
        full = assemble(frame, model.signature.columns, refs, store, now=now)
    except InvalidRequest as exc:  # the service's words, as a CLI error
        raise UserInputError(exc.message) from exc
    bad = invalid_rows(model.signature, full, lenient=looked_up)
    if bad and on_invalid == "fail":
        at, message = next(iter(bad.items()))
        raise UserInputError(
            f"Row {offset + at} is one the prediction service would refuse: {message} "
            "(--on-invalid skip or flag scores the other rows).")
    if bad:
        keep = np.ones(len(full), dtype=bool)
        keep[list(bad)] = False
        if on_invalid == "skip":
            batch, full = batch.filter(pa.array(keep)), full[keep]
    answer = answer_of(model, _predict_valid(model, full, bad if on_invalid == "flag" else {}))
    scores = answer.scores
    arrays = [*batch.columns]
    names = [*batch.schema.names]
    if on_invalid == "flag":
        reasons = [bad.get(i) for i in range(len(full))]
        arrays.append(pa.array(reasons, type=pa.string()))
        names.append(INVALID)
    decisions = None
    if answer.kind == "multiclass":  # the label, then one probability column per class
        assert answer.labels is not None
        arrays.append(pa.array(answer.labels.tolist()))
        arrays.extend(pa.array(scores[:, j], type=pa.float64()) for j in range(scores.shape[1]))
        names.extend(output_columns(model, scores.shape[1]))
        scores = scores.max(axis=1)  # the log's one number per row: the label's probability
    else:
        arrays.append(pa.array(scores, type=pa.float64()))
        names.append(SCORE)
        if threshold is not None:
            decisions = (scores >= threshold).astype(np.int8)
            arrays.append(pa.array(decisions, type=pa.int8()))
            names.append(DECISION)
    out = pa.RecordBatch.from_arrays(arrays, names=names)
    return _Scored(out, full, scores, decisions, (time.perf_counter() - started) * 1000,
                   bad, on_invalid == "flag")


@dataclass(frozen=True)
class _Scored:
    batch: pa.RecordBatch  # input columns + score (+ decision)
    inputs: pd.DataFrame  # the frame the model read, for the prediction log
    scores: Floats
    decisions: npt.NDArray[np.int8] | None
    latency_ms: float
    invalid: dict[int, str] = field(default_factory=dict)  # row in chunk -> why (refused)
    flagged: bool = False  # invalid rows are in ``batch``/``inputs``, unscored


def _log_chunk(
    plog: PredictionLog,
    scored: _Scored,
    *,
    label: tuple[str, int],
    run_id: str,
    offset: int,
    ts: datetime,
    columns: list[str],
    keys: list[str],
    id_column: str | None,
) -> None:
    from ctloop.requestlog.batches import LogBatch

    n = len(scored.scores)
    inputs, scores, decisions = scored.inputs, scored.scores, scored.decisions
    positions = np.arange(n)
    if scored.flagged and scored.invalid:  # a refused row was not scored: nothing to log
        keep = np.ones(n, dtype=bool)
        keep[list(scored.invalid)] = False
        inputs, scores, positions = inputs[keep], scores[keep], positions[keep]
        decisions = decisions[keep] if decisions is not None else None
    row_ids = None
    if id_column is not None:
        values = inputs[id_column].astype(object).where(inputs[id_column].notna(), None)
        row_ids = [None if v is None else str(v) for v in values.tolist()]
    entry = LogBatch(
        model_name=label[0],
        model_version=label[1],
        route="batch",
        ts=ts,
        request_ids=[f"{run_id}-{offset + int(i)}" for i in positions],
        predictions=scores,
        features=inputs[columns],
        entity=inputs[[k for k in keys if k in inputs.columns]],
        latency_ms=scored.latency_ms,
        protocol="batch",
        row_ids=row_ids,
        decisions=decisions,
    )
    plog.append(entry.records())


def _logical_time(now: str | None) -> datetime:
    """When the predictions count as made (``--now`` for a backfill), as the service does."""
    return instant_or_now(now, lambda text: UserInputError(
        f"The as-of time must be an ISO timestamp, e.g. 2013-06-01T12:00:00; got {text!r}."))


def predict_file(
    registry: ModelRegistry,
    artifacts: ArtifactStore,
    ref: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    feature_store: FeatureStore | None = None,
    feature_refs: list[str] | None = None,
    overwrite: bool = False,
    chunk_rows: int = 65_536,
    now: str | None = None,
    prediction_log: PredictionLog | None = None,
    id_column: str | None = None,
    on_start: Callable[[int | None], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_invalid: str = "fail",
) -> BatchResult:
    """Score every row of ``input_path`` with the model ``ref`` into ``output_path``.

    ``on_start(total_rows or None)`` then ``on_progress(rows_done_in_chunk)``
    report progress (the CLI draws a bar). Rows are checked exactly as the prediction
    service checks them (:mod:`ctloop.batch.checks`); ``on_invalid`` says what happens to
    the ones it would refuse: ``fail``, ``skip`` or ``flag``. Bad input raises ``UserInputError``
    (``NotFound`` for an unknown model or file) before anything is written.
    """
    on_invalid = check_on_invalid(on_invalid)
    source, target = Path(input_path), Path(output_path)
    in_fmt, out_fmt = batch_paths(source, target, overwrite)
    if chunk_rows < 1:
        raise UserInputError("The chunk size must be at least 1 row.")
    record = registry.get(ref)
    model = registry.load(f"{record.name}:{record.version}", artifacts)
    refs = feature_refs_of(registry.store, record, feature_refs)
    reader = _Reader(source, in_fmt, model, chunk_rows)
    looked_up = _check_columns(reader, model, refs, feature_store)
    ts = _logical_time(now)
    if id_column is not None and id_column not in reader.schema.names:
        raise UserInputError(
            f"The input {source} has no id column {id_column!r}; it has {reader.schema.names}."
        )
    threshold = model.decision_threshold if kind_of(model) == "binary" else None

    store = registry.store
    label = f"{record.name}:{record.version}"
    run, step, input_artifact = _start_run(store, label, source, target, threshold, chunk_rows)
    writer = _Writer(target, out_fmt)
    started = time.perf_counter()
    rows = positives = invalid = 0
    try:
        if on_start is not None:
            on_start(reader.total)
        keys = entity_keys(feature_store, list(refs))
        for batch in reader:
            scored = _score_batch(batch, model, refs, feature_store, now, threshold,
                                  on_invalid=on_invalid, offset=rows, looked_up=looked_up)
            writer.write(scored.batch)
            if prediction_log is not None:
                _log_chunk(
                    prediction_log,
                    scored,
                    label=(record.name, record.version),
                    run_id=run.id,
                    offset=rows,
                    ts=ts,
                    columns=model.signature.columns,
                    keys=keys,
                    id_column=id_column,
                )
            rows += batch.num_rows
            invalid += len(scored.invalid)
            if scored.decisions is not None:
                positives += int(scored.decisions.sum())
            if on_progress is not None:
                on_progress(batch.num_rows)
        if rows == 0:
            raise UserInputError(f"The input {source} has no rows to score.")
        if prediction_log is not None:
            prediction_log.flush()
        writer.commit()
    except BaseException as exc:
        writer.abort()
        message = exc.one_line() if isinstance(exc, CtloopError) else f"{type(exc).__name__}: {exc}"
        ended = utc_now()
        store.save_step(replace(step, status=StepStatus.FAILED, ended_at=ended, error=message))
        status = RunStatus.CANCELLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        store.update_run(run.id, RunUpdate(status=status, ended_at=ended, error=message))
        if isinstance(exc, CtloopError | KeyboardInterrupt):
            raise
        if isinstance(exc, TypeError | ValueError):  # rows the model cannot read
            raise UserInputError(
                f"The rows of {source} cannot be scored by {label}: {exc}"
            ) from exc
        raise
    seconds = time.perf_counter() - started
    output_artifact = store.add_artifact(
        ArtifactRecord(
            id=new_id(),
            type="Dataset",
            uri=target.resolve().as_uri(),
            sha256=hash_file(target),
            size=target.stat().st_size,
            name="predictions",
            properties={
                "format": out_fmt,
                "rows": rows,
                "model": label,
                "decision_threshold": threshold,
                "external": True,
            },
            producer_step_id=step.id,
        )
    )
    store.add_events(
        [
            EventRecord(step.id, input_artifact.id, "input", "data"),
            EventRecord(step.id, record.artifact_id, "input", "model"),
            EventRecord(step.id, output_artifact.id, "output", "predictions"),
        ]
    )
    outputs = {"rows": rows, "positives": positives if threshold is not None else None}
    ended = utc_now()
    store.save_step(
        replace(
            step, status=StepStatus.SUCCEEDED, ended_at=ended, duration_s=seconds, outputs=outputs
        )
    )
    store.update_run(run.id, RunUpdate(status=RunStatus.SUCCEEDED, ended_at=ended))
    return BatchResult(
        record.name,
        record.version,
        rows,
        target,
        seconds,
        run.id,
        input_artifact.id,
        output_artifact.id,
        threshold,
        positives if threshold is not None else None,
        looked_up,
        invalid,
    )


def _start_run(
    store: RunLineageStore,
    label: str,
    source: Path,
    target: Path,
    threshold: float | None,
    chunk_rows: int,
) -> tuple[RunRecord, StepRecord, ArtifactRecord]:
    from ctloop.pipeline.environment import capture_environment, capture_executor

    started = utc_now()
    parameters = {
        "model": label,
        "input": str(source),
        "output": str(target),
        "decision_threshold": threshold,
        "chunk_rows": chunk_rows,
    }
    run = store.create_run(
        RunRecord(
            id=new_id(),
            pipeline="batch-predict",
            pipeline_version="1",
            status=RunStatus.RUNNING,
            parameters=parameters,
            executor=capture_executor("local"),
            environment=capture_environment(),
            created_at=started,
            started_at=started,
        )
    )
    step = store.save_step(
        StepRecord(
            id=new_id(),
            run_id=run.id,
            name="predict",
            component="ctloop.batch.predict_file",
            component_version="1",
            status=StepStatus.RUNNING,
            parameters=parameters,
            attempts=1,
            started_at=started,
        )
    )
    input_artifact = store.add_artifact(
        ArtifactRecord(
            id=new_id(),
            type="Dataset",
            uri=source.resolve().as_uri(),
            sha256=hash_file(source),
            size=source.stat().st_size,
            name="data",
            properties={"format": FORMATS[source.suffix.lower()], "external": True},
        )
    )
    return run, step, input_artifact
