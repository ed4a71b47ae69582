"""One prediction request: route rows, fill features, check types, score in a micro-batch.

Everything works on columns (one array per model input), never on one Python
object per row; the log entry is a closure over those arrays, built into
frames by the log spool's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from starlette.concurrency import run_in_threadpool

from ctloop.core.clock import instant_or_now
from ctloop.core.errors import CtloopError, UserInputError
from ctloop.models.signature import Signature, input_layout
from ctloop.requestlog.entries import Entry
from ctloop.serving.config import ServingConfig
from ctloop.serving.errors import InvalidRequest
from ctloop.serving.inputs import Inputs
from ctloop.serving.pool import Deployment, Served
from ctloop.serving.scoring.answer import Answer, answer_of, is_tensor_model, tensor_answer
from ctloop.serving.scoring.batching import BatchStats, MicroBatcher
from ctloop.serving.scoring.fastpath import predictor_for
from ctloop.serving.scoring.features import Filled, entity_keys, fill, needs_lookup

if TYPE_CHECKING:
    from ctloop.features import FeatureStore

__all__ = ["Part", "Scored", "Scorer", "checked_rows", "logical_time"]

log = logging.getLogger("ctloop.serving")


@dataclass(frozen=True)
class Part:
    """The rows one route answered."""

    served: Served
    rows: np.ndarray | None  # positions in the request; None: every row
    answer: Answer
    inputs: dict[str, np.ndarray]  # typed model inputs
    entity: Mapping[str, Sequence[Any] | np.ndarray]
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] | None = None  # a tensor model's inputs (for the log)

    @property
    def scores(self) -> np.ndarray:
        """One number per row for the request log: P(positive), the value, or for
        multiclass the probability of the predicted class (NaN for tensor models)."""
        answer = self.answer
        if answer.kind == "multiclass":
            top: np.ndarray = answer.scores.max(axis=1)
            return top
        return answer.scores

    @property
    def decisions(self) -> np.ndarray | None:
        return self.answer.decisions

    def log_answer(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores and labels for the request log: multiclass keeps its (n, k) probabilities
        (a typed list column) and labels; others their one number per row."""
        if self.answer.kind == "multiclass":
            return self.answer.scores, self.answer.labels
        return self.scores, None


@dataclass(frozen=True)
class Scored:
    """A whole request's answer, assembled from its route parts."""

    deployment: Deployment
    inputs: Inputs
    answer: Answer
    route_index: np.ndarray
    parts: list[Part]

    @property
    def scores(self) -> np.ndarray:
        return self.answer.scores

    @property
    def decisions(self) -> np.ndarray | None:
        return self.answer.decisions

    def missing_by_row(self) -> list[list[str]] | None:
        """Per row, the inputs the online store could not fill (None when all were)."""
        if not any(p.missing for p in self.parts):
            return None
        out: list[list[str]] = [[] for _ in range(self.inputs.rows)]
        for part in self.parts:
            where = np.arange(self.inputs.rows) if part.rows is None else part.rows
            for column, rows in part.missing.items():
                for r in where[rows].tolist():
                    out[r].append(column)
        return out

    def versions(self) -> list[int]:
        versions = np.array([s.version for s in self.deployment.routes])
        return versions[self.route_index].tolist()  # type: ignore[no-any-return]

    def routes(self) -> list[str]:
        routes = np.array([s.route for s in self.deployment.routes], dtype=object)
        return routes[self.route_index].tolist()  # type: ignore[no-any-return]

    def log_entries(self, latency_ms: float, ts: datetime) -> list[Entry]:
        """This request's log entries: arrays only, frames are built by the spool."""
        return [e for part in self.parts for e in _part_entries(self, part, latency_ms, ts)]


def _part_entries(scored: Scored, part: Part, latency_ms: float, ts: datetime) -> list[Entry]:
    inputs = scored.inputs
    if part.rows is None:
        ids, row_ids = inputs.request_ids, inputs.row_ids
    else:
        taken = part.rows.tolist()
        ids = [inputs.request_ids[i] for i in taken]
        row_ids = None if inputs.row_ids is None else [inputs.row_ids[i] for i in taken]
    served = part.served
    scores, labels = part.log_answer()
    entry = Entry(served.name, served.version, served.route, inputs.protocol, ts, latency_ms,
                  ids, scores, part.inputs, part.entity, row_ids, part.decisions,
                  model=served.model, labels=labels, tensors=_tensors(part, "in"),
                  output_tensors=_tensors(part, "out"))
    if not part.missing:
        return [entry]
    # rows with different unfilled inputs go in separate entries, each flagged exactly
    flags: list[tuple[str, ...]] = [()] * len(ids)
    for column, rows in part.missing.items():
        for r in rows.tolist():
            flags[r] = (*flags[r], column)
    out = []
    for key in dict.fromkeys(flags):
        picked = np.array([f == key for f in flags], dtype=bool)
        where = np.flatnonzero(picked).tolist()
        out.append(replace(
            entry,
            request_ids=[ids[i] for i in where],
            scores=scores[picked],
            labels=None if labels is None else labels[picked],
            inputs={k: v[picked] for k, v in part.inputs.items()},
            entity={k: [v[i] for i in where] for k, v in part.entity.items()},
            row_ids=None if row_ids is None else [row_ids[i] for i in where],
            decisions=None if part.decisions is None else part.decisions[picked],
            missing=key,
        ))
    return out


class Scorer:
    """Scores requests for every deployment of an app, one micro-batcher per loaded version."""

    def __init__(self, config: ServingConfig, store: FeatureStore | None) -> None:
        self.config = config
        self.store = store
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ctloop-model")
        self._batchers: dict[int, tuple[Served, MicroBatcher]] = {}
        self._entity: dict[tuple[str, ...], list[str]] = {}

    def batcher(self, served: Served) -> MicroBatcher:
        key = id(served.model)
        found = self._batchers.get(key)
        if found is not None and found[0].model is served.model:
            return found[1]
        predictor = predictor_for(served.model, threads=self.config.model_threads)
        batcher = MicroBatcher(
            predictor.predict,
            executor=self.executor,
            max_wait=self.config.batch_wait_ms / 1000,
            max_rows=self.config.batch_rows,
            score_matrix=predictor.matrix,
        )
        self._batchers[key] = (served, batcher)
        return batcher

    def batch_stats(self) -> dict[str, BatchStats]:
        """How requests coalesced, per loaded ``name:version``."""
        return {f"{s.name}:{s.version}": b.stats for s, b in self._batchers.values()}

    def forget(self, live: set[int]) -> None:
        """Drop the batchers of versions no longer served (after a hot swap)."""
        # A new dict, swapped in one step: request threads may be iterating the old one.
        self._batchers = {k: v for k, v in self._batchers.items() if k in live}

    async def score(self, deployment: Deployment, inputs: Inputs) -> Scored:
        assigned = deployment.router.assign(inputs.columns, inputs.request_ids)
        n = inputs.rows
        if len(deployment.routes) == 1 or not assigned.any():
            part = await self._part(deployment.routes[0], inputs, None)
            return Scored(deployment, inputs, part.answer, assigned, [part])
        parts = []
        for index, served in enumerate(deployment.routes):
            mask = assigned == index
            if not mask.any():
                continue
            rows = np.flatnonzero(mask)
            parts.append(await self._part(served, inputs.take(mask), rows))
        return Scored(deployment, inputs, _merge(deployment.name, parts, n), assigned, parts)

    async def _part(self, served: Served, inputs: Inputs, rows: np.ndarray | None) -> Part:
        model = served.model
        signature = model.signature
        if is_tensor_model(model):
            return await self._tensor_part(served, inputs, rows)
        needed = input_layout(signature.inputs).names  # not rebuilt per request
        filled = Filled(inputs.columns)
        if needs_lookup(inputs.columns, needed):
            filled = await run_in_threadpool(
                fill, inputs.columns, needed, served.feature_refs, self.store, now=inputs.now
            )
        typed = checked_rows(self.config, served, filled, inputs)
        matrix = _block(signature, filled, inputs)
        try:
            scores = await self.batcher(served).submit(typed, inputs.rows, matrix)
        except UserInputError as exc:
            raise InvalidRequest(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"The rows cannot be scored by {served.name}:{served.version}: {exc}"
            ) from exc
        try:
            answer = answer_of(model, scores)
        except ValueError as exc:
            raise CtloopError(f"{served.name}:{served.version} answered wrongly: {exc}") from exc
        keys = self._entity_keys(served)
        entity = {k: filled.columns[k] for k in keys if k in filled.columns}
        return Part(served, rows, answer, typed, entity, filled.missing)

    async def _tensor_part(self, served: Served, inputs: Inputs, rows: np.ndarray | None
                           ) -> Part:
        """A tensor model (ONNX): the decoded N-d inputs straight to ``predict_tensors``."""
        model = served.model
        tensors = {k: np.asarray(v) for k, v in inputs.columns.items()}
        try:
            outputs = await run_in_threadpool(model.predict_tensors, tensors)
        except UserInputError as exc:
            raise InvalidRequest(str(exc)) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"The tensors cannot be scored by {served.name}:{served.version}: {exc}"
            ) from exc
        try:
            answer = tensor_answer(outputs, inputs.rows)
        except ValueError as exc:
            raise CtloopError(f"{served.name}:{served.version} answered wrongly: {exc}") from exc
        return Part(served, rows, answer, {}, {}, tensors=tensors)

    def _entity_keys(self, served: Served) -> list[str]:
        refs = served.feature_refs
        if refs not in self._entity:
            try:
                self._entity[refs] = entity_keys(self.store, list(refs))
            except UserInputError:
                self._entity[refs] = []
        return self._entity[refs]

    async def shadow(self, shadow: Served, inputs: Inputs, started: float) -> Part | None:
        """The shadow's scores for every row (logged, never returned); None if it failed."""
        try:
            return await self._part(shadow, inputs, None)
        except Exception as exc:  # the shadow must never affect the served answer
            log.warning("shadow %s:%s failed: %s", shadow.name, shadow.version, exc)
            return None

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def checked_rows(config: ServingConfig, served: Served, filled: Filled, inputs: Inputs
                 ) -> dict[str, np.ndarray]:
    """The request's rows as the model's typed inputs, or the 4xx saying what is wrong.

    One check for every route that reads rows (predict, explain) and every protocol:
    unfilled features, then the signature (types, nulls, NaN/inf, integer ranges).
    """
    if filled.missing and config.missing_features == "reject":
        counts = {c: len(r) for c, r in filled.missing.items()}
        raise InvalidRequest(
            f"The online store cannot fill {sorted(counts)} for some rows (rows per input: "
            f"{counts}): it holds no current value for their entity keys. Send the values, "
            "materialize the features, or set missing_features = \"flag\" in "
            "[ctloop.serving] to answer such rows flagged."
        )
    signature = served.model.signature
    plain = _plain_numbers(signature, filled.columns, _block(signature, filled, inputs))
    if plain is not None:
        return plain
    try:
        return signature.conform(
            filled.columns,
            coerce=config.coerce_types or inputs.coerce,
            allow_nulls=config.allow_nulls,
            lenient=filled.looked_up,
            what="The request rows",
        )
    except UserInputError as exc:
        raise InvalidRequest(str(exc)) from None


_NUMERIC = frozenset({"integer", "float"})
_INT64_BOUND = 2.0**63


def _plain_numbers(signature: Signature, columns: Mapping[str, Any],
                   matrix: np.ndarray | None = None) -> dict[str, np.ndarray] | None:
    """The typed inputs when every column is a finite float64 tensor that ``conform`` would
    pass unchanged (numeric columns; whole numbers within int64 for integer ones), checked in
    one vectorised pass instead of two NumPy reductions per column; None otherwise, and
    ``conform`` decides (and words any error) as before.

    A v2 request of FP64 tensors (one ``[n, k]`` or one per column) is the common case:
    its columns arrive as float64 arrays, which ``conform`` returns as they are. ``matrix``
    is the ``[n, k]`` block ``columns`` were cut from (in signature order), checked whole.
    """
    if matrix is not None:
        return _plain_block(signature, columns, matrix)
    arrays: list[np.ndarray] = []
    integers: list[np.ndarray] = []
    for spec in signature.inputs:
        values = columns.get(spec.name)
        if (type(values) is not np.ndarray or values.dtype != np.float64 or values.ndim != 1
                or spec.type not in _NUMERIC):
            return None
        arrays.append(values)
        if spec.type == "integer":
            integers.append(values)
    if not arrays or not np.isfinite(np.concatenate(arrays)).all():
        return None  # NaN or infinity: conform knows what each column allows
    if integers:
        whole = np.concatenate(integers)
        if not ((whole == np.floor(whole)).all() and (np.abs(whole) < _INT64_BOUND).all()):
            return None
    return {spec.name: a for spec, a in zip(signature.inputs, arrays, strict=True)}


def _block(signature: Signature, filled: Filled, inputs: Inputs) -> np.ndarray | None:
    """The request's float block, when the rows to score are its columns unchanged (nothing
    looked up) and it holds exactly this model's inputs in order (a canary or shadow version
    may read other columns than the version the request was decoded for)."""
    matrix = inputs.matrix
    if matrix is None or filled.columns is not inputs.columns:
        return None
    return matrix if inputs.matrix_columns == input_layout(signature.inputs).names else None


def _plain_block(signature: Signature, columns: Mapping[str, Any], matrix: np.ndarray
                 ) -> dict[str, np.ndarray] | None:
    """:func:`_plain_numbers` for columns cut from one float64 block (see :func:`_block`):
    the same rule, one reduction over the block instead of a copy of every column first."""
    layout = input_layout(signature.inputs)
    names, integers = layout.names, layout.integers
    if integers is None or matrix.ndim != 2 or matrix.shape[1] != len(names):
        return None
    if not np.isfinite(matrix).all():
        return None
    if integers:
        whole = matrix[:, list(integers)]
        if not ((whole == np.floor(whole)).all() and (np.abs(whole) < _INT64_BOUND).all()):
            return None
    return {name: columns[name] for name in names}




def _merge(name: str, parts: list[Part], n: int) -> Answer:
    """One answer for a request whose rows several routes (versions) answered."""
    first = parts[0].answer
    for part in parts[1:]:
        other = part.answer
        if (other.kind, other.classes, other.scores.shape[1:]) != (
                first.kind, first.classes, first.scores.shape[1:]):
            raise CtloopError(
                f"The routes of {name!r} answer differently ({first.kind} {first.classes} vs "
                f"{other.kind} {other.classes}); a canary or A/B split needs versions with "
                "one task and one set of classes."
            )

    def merged(pick: Callable[[Answer], np.ndarray | None]) -> np.ndarray | None:
        values = [pick(p.answer) for p in parts]
        if any(v is None for v in values):
            return None
        head = values[0]
        assert head is not None
        out = np.empty((n, *head.shape[1:]), dtype=head.dtype)
        for part, value in zip(parts, values, strict=True):
            out[part.rows] = value
        return out

    def tensor(key: str) -> Callable[[Answer], np.ndarray | None]:
        return lambda a: None if a.tensors is None else a.tensors.get(key)

    tensors = None
    if first.tensors is not None:
        tensors = {}
        for key in first.tensors:
            value = merged(tensor(key))
            if value is not None:
                tensors[key] = value
    scores = merged(lambda a: a.scores)
    assert scores is not None
    return Answer(first.kind, scores, merged(lambda a: a.labels),
                  merged(lambda a: a.decisions), first.classes, tensors)


def logical_time(now: str | None) -> datetime:
    """When the predictions count as made: the request's ``now`` (a replay, a backfill), else now.

    Monitors window the log by this time, so replayed traffic lands in the
    period it replays, not in the hour it was sent.
    """
    return instant_or_now(now, lambda text: InvalidRequest(
        f"'now' must be an ISO timestamp, e.g. 2013-06-01T12:00:00. Got {text!r}."))


def shadow_entry(part: Part, inputs: Inputs, latency_ms: float, ts: datetime) -> Entry:
    """The log entry of a shadow's scores (served=False, route "shadow")."""
    served = part.served
    scores, labels = part.log_answer()
    return Entry(served.name, served.version, "shadow", inputs.protocol, ts, latency_ms,
                 inputs.request_ids, scores, part.inputs, part.entity, inputs.row_ids,
                 part.decisions, served=False, model=served.model, labels=labels,
                 tensors=_tensors(part, "in"), output_tensors=_tensors(part, "out"))


def _tensors(part: Part, which: Literal["in", "out"]) -> Mapping[str, np.ndarray] | None:
    """A tensor model's input or output tensors for the log (which keeps digests, shapes
    and small outputs of them, built off the request path)."""
    if part.tensors is None:
        return None
    tensors = part.tensors if which == "in" else (part.answer.tensors or {})
    if part.rows is None:
        return tensors
    return {k: np.asarray(v)[part.rows] for k, v in tensors.items()}
