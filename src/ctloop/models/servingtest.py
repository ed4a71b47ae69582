"""Test a candidate as it will be served: the real service, every protocol, a bounded load.

``serve_candidate`` starts ``ctloop serve`` on one version in a subprocess
(its own port, the request log kept out of the environment's) and waits for
``/ready``; ``serve_folder`` does the same for a model folder not registered
yet (the infra check), in a throw-away registry. ``check_service`` sends a
sample over v1 and v2 HTTP (and gRPC, through a caller the CLI supplies: the
protocol's stubs belong to the serving layer) with 1, 2 and 100 rows,
compares every answer with the in-process prediction, then loads the service
for a bounded time (:mod:`ctloop.models.loadgen`) and judges p99 latency and
error rate against a :class:`ServingBudget`.

Timeouts come from ``[ctloop.model_test]`` (``startup_timeout``,
``request_timeout``) and ``CTLOOP_MODEL_TEST_TIMEOUT``, which CI raises on
slow machines; nothing here relies on timing except the budget it is asked
to judge.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ctloop.core.arrays import Cell, Floats, Values
from ctloop.core.errors import ConfigError, UserInputError
from ctloop.core.net import free_port

if TYPE_CHECKING:
    import httpx
    import numpy.typing as npt

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.metadata.base import ModelStore
    from ctloop.models.flavors import LoadedModel

__all__ = [
    "SIZES",
    "AnswerCheck",
    "GrpcInfer",
    "LoadCheck",
    "ServingBudget",
    "ServingReport",
    "ServingTimeouts",
    "check_service",
    "compare_outputs",
    "encode_v2",
    "prepare_sample",
    "register_candidate",
    "serve_candidate",
    "serve_folder",
    "summary_rows",
    "v2_datatype",
]

SIZES = (1, 2, 100)
Protocol = Literal["v1", "v2", "grpc"]
# (gRPC address, model name, frame) -> output name -> array; supplied by the CLI.
GrpcInfer = Callable[[str, str, pd.DataFrame, float], dict[str, Values]]
_BUDGET_KEYS = ("p99_ms", "max_error_rate", "concurrency", "seconds", "rows")


@dataclass(frozen=True)
class ServingBudget:
    """What the served candidate must hold under load: the gate's ``serving`` rule.

    ``gate = { serving = { p99_ms = 50, concurrency = 8 } }``: ``concurrency``
    connections send ``rows``-row requests for ``seconds``; p99 latency must
    be at most ``p99_ms`` (unchecked when absent) and the share of failed
    requests at most ``max_error_rate``.
    """

    p99_ms: float | None = None
    max_error_rate: float = 0.0
    concurrency: int = 4
    seconds: float = 2.0
    rows: int = 1

    @classmethod
    def from_table(cls, table: object) -> ServingBudget | None:
        """From the gate's ``serving`` table (``true``: defaults; absent/false: no rule);
        anything else is one clear line."""
        if table is None or table is False:
            return None
        if table is True:
            return cls()
        if not isinstance(table, Mapping):
            raise UserInputError(f"The gate's serving rule must be a table like "
                                 f"{{p99_ms = 50, concurrency = 8}}. Got {table!r}.")
        unknown = sorted(set(table) - set(_BUDGET_KEYS))
        if unknown:
            raise UserInputError(f"Unknown key(s) {unknown} in the gate's serving rule; "
                                 f"allowed: {', '.join(_BUDGET_KEYS)}.")
        try:
            budget = cls(
                p99_ms=None if table.get("p99_ms") is None else float(table["p99_ms"]),
                max_error_rate=float(table.get("max_error_rate", 0.0)),
                concurrency=int(table.get("concurrency", 4)),
                seconds=float(table.get("seconds", 2.0)),
                rows=int(table.get("rows", 1)),
            )
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"The gate's serving rule has a value that is not a number: "
                                 f"{exc}.") from None
        if budget.concurrency < 1 or budget.seconds <= 0 or budget.rows < 1:
            raise UserInputError("The gate's serving rule needs concurrency >= 1, seconds > 0 "
                                 f"and rows >= 1. Got {table!r}.")
        if not 0 <= budget.max_error_rate <= 1 or (budget.p99_ms is not None
                                                    and budget.p99_ms <= 0):
            raise UserInputError("The gate's serving rule needs 0 <= max_error_rate <= 1 and "
                                 f"p99_ms > 0. Got {table!r}.")
        return budget

    def to_dict(self) -> dict[str, float | int]:
        values: dict[str, float | int | None] = {k: getattr(self, k) for k in _BUDGET_KEYS}
        return {k: v for k, v in values.items() if v is not None}


def _seconds(value: object) -> float:
    """A TOML number or numeric string as seconds; anything else is a ``ValueError``."""
    if isinstance(value, int | float | str):
        return float(value)
    raise ValueError(f"{value!r}")


@dataclass(frozen=True)
class ServingTimeouts:
    """How long to wait for the service to start and for one answer."""

    startup_s: float = 60.0
    request_s: float = 30.0

    @classmethod
    def from_table(cls, table: Mapping[str, object] | None = None) -> ServingTimeouts:
        """``[ctloop.model_test]`` startup_timeout / request_timeout; ``CTLOOP_MODEL_TEST_TIMEOUT``
        (seconds) raises both to at least that, as CI does on a loaded machine."""
        table = table or {}
        try:
            startup = _seconds(table.get("startup_timeout", cls.startup_s))
            request = _seconds(table.get("request_timeout", cls.request_s))
            floor = float(os.environ.get("CTLOOP_MODEL_TEST_TIMEOUT") or 0)
        except ValueError as exc:
            raise ConfigError(f"A model test timeout is not a number: {exc}.") from None
        return cls(max(startup, floor), max(request, floor))


@dataclass(frozen=True)
class AnswerCheck:
    """One request of ``rows`` rows over one protocol, compared with the in-process answer."""

    protocol: Protocol
    rows: int
    passed: bool
    status: int  # HTTP status (gRPC: 200 for OK, else the gRPC code's value)
    detail: str
    ms: float


@dataclass(frozen=True)
class LoadCheck:
    """The bounded load test and its verdict against the budget."""

    concurrency: int
    seconds: float
    rows: int
    requests: int
    errors: int
    error_rate: float
    p50_ms: float
    p99_ms: float
    rps: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class ServingReport:
    """Everything ``ctloop models test`` found, and its verdict."""

    name: str
    version: int | None
    url: str
    answers: tuple[AnswerCheck, ...]
    load: LoadCheck | None
    budget: dict[str, float | int]
    passed: bool
    failures: tuple[str, ...]
    seconds: float = 0.0
    startup_s: float = 0.0
    protocols: tuple[str, ...] = field(default_factory=tuple)


# --- the expected answer ---------------------------------------------------------------

def _labels(model: LoadedModel, frame: pd.DataFrame) -> Values | None:
    """Class labels for a classifier (``predict_labels``, else by the decision threshold);
    None for a regression model."""
    task = str(getattr(model, "task", ""))
    if task not in ("binary", "multiclass", "classification"):
        return None
    fn = getattr(model, "predict_labels", None)
    if callable(fn):
        try:
            return np.asarray(fn(frame))
        except UserInputError:  # a classifier saved before its classes were recorded
            pass
    return np.asarray(model.predict_label(frame, model.decision_threshold))


def _close(actual: npt.ArrayLike, expected: npt.ArrayLike) -> bool:
    try:
        a = np.asarray(actual, dtype=float)
        e = np.asarray(expected, dtype=float)
    except (TypeError, ValueError):
        return False
    return a.shape == e.shape and bool(np.allclose(a, e, rtol=1e-6, atol=1e-9, equal_nan=True))


def _same_labels(actual: npt.ArrayLike, expected: npt.ArrayLike) -> bool:
    a, e = np.asarray(actual).reshape(-1), np.asarray(expected).reshape(-1)
    return a.shape == e.shape and [str(x) for x in a] == [str(x) for x in e]


def compare_outputs(outputs: Mapping[str, npt.ArrayLike], scores: Floats,
                    labels: Values | None) -> tuple[bool, str]:
    """Whether the service's outputs say what the in-process model says, and why not.

    ``prediction(s)`` must equal the scores (or, once answers carry labels, the
    labels), ``probabilities`` the class probabilities, ``label`` the labels;
    at least one of them must be present.
    """
    n = len(scores)
    checked, wrong = [], []
    for name, value in outputs.items():
        arr = np.asarray(value)
        if name in ("prediction", "predictions"):
            ok = _close(arr, scores) or (labels is not None and _same_labels(arr, labels))
        elif name == "probabilities":
            if scores.ndim == 2:
                ok = _close(arr, scores)
            else:  # binary: (n,) P(positive) or (n, 2) with the positive class last
                ok = _close(arr, scores) or (arr.ndim == 2 and arr.shape == (n, 2)
                                             and _close(arr[:, -1], scores))
        elif name in ("label", "labels"):
            ok = labels is not None and _same_labels(arr, labels)
        else:
            continue
        checked.append(name)
        if not ok:
            got = arr.reshape(-1)[:3].tolist() if arr.size else []
            wrong.append(f"{name} shape {list(arr.shape)} {got}... differs from the "
                         f"in-process {list(np.asarray(scores).shape)} "
                         f"{np.asarray(scores).reshape(-1)[:3].tolist()}...")
    if not checked:
        return False, f"no prediction in the answer (outputs: {sorted(outputs)})"
    if wrong:
        return False, "; ".join(wrong)
    return True, f"{', '.join(checked)} equal the in-process prediction"


# --- bodies --------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _json_value(v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def v2_datatype(series: pd.Series[Cell]) -> str:
    """The Open Inference Protocol datatype a column travels as."""
    if pd.api.types.is_bool_dtype(series):
        return "BOOL"
    if pd.api.types.is_integer_dtype(series):
        return "INT64"
    if pd.api.types.is_float_dtype(series):
        return "FP64"
    return "BYTES"


def encode_v2(frame: pd.DataFrame) -> dict[str, Any]:
    """A v2 inference request body for ``frame`` (one input per column)."""
    return {"inputs": [
        {"name": str(c), "datatype": v2_datatype(frame[c]), "shape": [len(frame)],
         "data": [_json_value(v) for v in frame[c].tolist()]}
        for c in frame.columns
    ]}


def _v2_outputs(body: Mapping[str, Any]) -> dict[str, Values]:
    out = {}
    for output in body.get("outputs") or []:
        data = np.asarray(output.get("data"), dtype=object)
        shape = output.get("shape") or [data.size]
        try:
            out[str(output["name"])] = data.reshape(shape)
        except ValueError:
            out[str(output["name"])] = data
    return out


def _error_text(response: Any) -> str:
    try:
        body = response.json()
        text = body.get("error") or body.get("detail") or response.text
    except ValueError:
        text = response.text
    return " ".join(str(text).split())[:200]


# --- the checks ----------------------------------------------------------------------

def prepare_sample(sample: pd.DataFrame, model: Any) -> pd.DataFrame:
    """The model's input columns of ``sample``, complete rows first (the service refuses
    nulls in columns that had none in training)."""
    columns = list(model.signature.columns)
    missing = [c for c in columns if c not in sample.columns]
    if missing:
        raise UserInputError(f"The sample lacks the model's input column(s) {missing}.")
    frame = sample[columns]
    complete = frame.dropna()
    return (complete if len(complete) else frame).reset_index(drop=True)


def _sample(sample: pd.DataFrame, size: int) -> pd.DataFrame:
    if len(sample) == 0:
        raise UserInputError("The model test needs at least one sample row.")
    index = np.resize(np.arange(len(sample)), max(SIZES))
    return sample.iloc[index].reset_index(drop=True).head(size)


def check_service(
    url: str,
    name: str,
    sample: pd.DataFrame,
    model: Any,
    *,
    budget: ServingBudget | None = None,
    grpc_address: str | None = None,
    grpc_infer: GrpcInfer | None = None,
    timeouts: ServingTimeouts | None = None,
    version: int | None = None,
    startup_s: float = 0.0,
    api_key: str | None = None,
    client: httpx.Client | None = None,
) -> ServingReport:
    """Send ``sample`` to the service at ``url`` and judge its answers, latency and errors.

    ``model`` is the candidate loaded in this process (a ``LoadedModel``): its
    predictions on the same rows are what every answer must equal. ``api_key`` goes
    in ``X-API-Key`` when the service has keys. ``client`` sends the requests instead
    of a new one to ``url`` (an in-process ASGI client; then no load test is run).
    """
    import httpx

    began = time.perf_counter()
    timeouts = timeouts or ServingTimeouts()
    frame = _sample(prepare_sample(sample, model), max(SIZES))
    answers: list[AnswerCheck] = []
    failures: list[str] = []
    try:
        all_scores = np.asarray(model.predict(frame))
        all_labels = _labels(model, frame)
    except Exception as exc:  # the candidate itself fails: that is the verdict
        all_scores, all_labels = np.asarray([]), None
        failures.append(f"in-process prediction of {len(frame)} rows failed: {exc}")
    if not failures and len(all_scores) != len(frame):
        failures.append(f"in-process prediction of {len(frame)} rows returned shape "
                        f"{list(all_scores.shape)}")
    no_reference = bool(failures)
    protocols: list[Protocol] = ["v1", "v2"]
    if grpc_address and grpc_infer:
        protocols.append("grpc")
    headers = {"X-API-Key": api_key} if api_key else {}
    with (nullcontext(client) if client is not None else
          httpx.Client(base_url=url, timeout=timeouts.request_s, headers=headers)) as sender:
        for size in SIZES:
            part = frame.head(size)
            scores = all_scores[:size] if len(all_scores) == len(frame) else all_scores
            labels = None if all_labels is None else all_labels[:size]
            for protocol in protocols:
                started = time.perf_counter()
                status, outputs, error = _ask(sender, protocol, name, part, grpc_address,
                                              grpc_infer, timeouts.request_s)
                ms = (time.perf_counter() - started) * 1000
                if error is not None:
                    passed, detail = False, error
                elif no_reference:
                    passed, detail = False, "no in-process prediction to compare with"
                else:
                    passed, detail = compare_outputs(outputs, scores, labels)
                answers.append(AnswerCheck(protocol, size, passed, status, detail, ms))
                if not passed:
                    failures.append(f"{protocol} with {size} row(s): {detail}")
    load = None
    if budget is not None and client is None:
        load = _load(url, name, frame.head(budget.rows), budget, timeouts, headers)
        if not load.passed:
            failures.append(f"load: {load.detail}")
    return ServingReport(
        name=name, version=version, url=url, answers=tuple(answers), load=load,
        budget=budget.to_dict() if budget else {}, passed=not failures,
        failures=tuple(failures), seconds=time.perf_counter() - began + startup_s,
        startup_s=startup_s, protocols=tuple(protocols),
    )


def _ask(client: Any, protocol: Protocol, name: str, frame: pd.DataFrame,
         grpc_address: str | None, grpc_infer: GrpcInfer | None, timeout_s: float
         ) -> tuple[int, dict[str, np.ndarray], str | None]:
    """(status, outputs, error) of one request."""
    import httpx

    try:
        if protocol == "grpc":
            assert grpc_address is not None and grpc_infer is not None
            try:
                return 200, grpc_infer(grpc_address, name, frame, timeout_s), None
            except Exception as exc:  # a gRPC error status: the answer is the failure
                return _grpc_failure(exc)
        if protocol == "v1":
            response = client.post(f"/v1/models/{name}:predict",
                                   json={"instances": _rows(frame)})
        else:
            response = client.post(f"/v2/models/{name}/infer", json=encode_v2(frame))
    except httpx.HTTPError as exc:
        return 0, {}, f"no answer: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return response.status_code, {}, f"HTTP {response.status_code}: {_error_text(response)}"
    body = response.json()
    if protocol == "v2":
        return 200, _v2_outputs(body), None
    outputs = {k: np.asarray(body[k], dtype=object) for k in
               ("predictions", "probabilities", "labels", "label") if k in body}
    return 200, outputs, None


def _grpc_failure(exc: Exception) -> tuple[int, dict[str, Values], str]:
    code = getattr(exc, "code", None)
    value = code() if callable(code) else None
    number = value.value[0] if value is not None else 0
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return int(number), {}, f"gRPC {getattr(value, 'name', 'error')}: " + " ".join(
        str(text).split())[:200]


def _load(url: str, name: str, frame: pd.DataFrame, budget: ServingBudget,
          timeouts: ServingTimeouts, headers: dict[str, str]) -> LoadCheck:
    from ctloop.models.loadgen import load

    body = json.dumps({"instances": _rows(frame)}).encode()
    result = load(f"{url}/v1/models/{name}:predict", body, concurrency=budget.concurrency,
                  seconds=budget.seconds, warmup_s=min(0.3, budget.seconds),
                  timeout_s=timeouts.request_s, headers=headers)
    problems = []
    if result.requests == 0:
        problems.append("no request was answered")
    if result.error_rate > budget.max_error_rate:
        problems.append(f"error rate {result.error_rate:.1%} > {budget.max_error_rate:.1%}")
    if budget.p99_ms is not None and not result.p99_ms <= budget.p99_ms:
        problems.append(f"p99 {result.p99_ms:.1f} ms > {budget.p99_ms:g} ms")
    detail = "; ".join(problems) if problems else (
        f"p99 {result.p99_ms:.1f} ms" + (f" <= {budget.p99_ms:g} ms" if budget.p99_ms else "")
        + f", errors {result.error_rate:.1%}")
    detail += (f" ({result.requests} requests of {budget.rows} row(s) from {budget.concurrency}"
               f" connections in {result.seconds:.1f} s)")
    return LoadCheck(budget.concurrency, round(result.seconds, 3), budget.rows, result.requests,
                     result.errors, result.error_rate, result.p50_ms, result.p99_ms, result.rps,
                     not problems, detail)


# --- starting the service -----------------------------------------------------------

_STORE_VARIABLES = ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                    "CTLOOP_ONLINE_STORE_URL", "CTLOOP_ENV", "CTLOOP_SERVE_OPTIONS")


@contextmanager
def serve_candidate(
    name: str,
    version: int,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeouts: ServingTimeouts | None = None,
    grpc: bool = True,
    while_starting: Callable[[], object] | None = None,
) -> Iterator[tuple[str, str | None, float]]:
    """Run ``ctloop serve NAME --alias VERSION`` until the block ends; yield (url, grpc, startup s).

    ``env`` is the whole environment of the service (default: this process's).
    Its request log goes to a temporary folder: test traffic never reaches the
    environment's monitors. ``while_starting`` runs here while the service
    starts (loading the in-process reference costs no extra time).
    """
    timeouts = timeouts or ServingTimeouts()
    port = free_port()
    grpc_port = free_port() if grpc else None
    log_dir = tempfile.mkdtemp(prefix="ctloop-model-test-log-")
    command = [sys.executable, "-m", "ctloop", "serve", name, "--alias", str(version),
               "--host", "127.0.0.1", "--port", str(port), "--reload-interval", "0",
               "--log-level", "warning", "--request-log", Path(log_dir).as_uri()]
    if grpc_port is not None:
        command += ["--grpc-port", str(grpc_port)]
    began = time.perf_counter()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, cwd=cwd, env=dict(env if env is not None else os.environ),
                            stdout=subprocess.DEVNULL, stderr=errors)
    url = f"http://127.0.0.1:{port}"
    try:
        if while_starting is not None:
            while_starting()
        _wait_ready(proc, url, grpc_port, timeouts.startup_s, errors)
        yield url, (f"127.0.0.1:{grpc_port}" if grpc_port else None), (
            time.perf_counter() - began)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors.close()
        shutil.rmtree(log_dir, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, grpc_port: int | None,
                timeout_s: float, errors: Any) -> None:
    import socket

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            errors.seek(0)
            tail = [line for line in errors.read().decode(errors="replace").splitlines()
                    if line.strip()][-1:] or ["no output"]
            raise UserInputError(f"The prediction service for the candidate exited "
                                 f"(code {proc.returncode}) before it was ready: {tail[0]}")
        try:
            ready = httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready and grpc_port is not None:
            with socket.socket() as s:
                s.settimeout(1)
                ready = s.connect_ex(("127.0.0.1", grpc_port)) == 0
        if ready:
            return
        if time.monotonic() > deadline:
            raise UserInputError(
                f"The prediction service for the candidate was not ready after {timeout_s:g} s; "
                "raise startup_timeout in [ctloop.model_test] (or CTLOOP_MODEL_TEST_TIMEOUT)."
            )
        time.sleep(0.1)


def register_candidate(store: ModelStore, artifacts: ArtifactStore, folder: str | Path,
                       name: str) -> int:
    """Store ``folder`` and make it ``name``'s champion in a throw-away registry; its version.

    The service then loads it hash-checked, as any version (the socket check and the
    probe's in-process check both serve a candidate this way)."""
    from ctloop.metadata import new_id
    from ctloop.metadata.base import ArtifactRecord

    stored = artifacts.put(Path(folder))
    artifact = store.add_artifact(ArtifactRecord(
        new_id(), "Model", stored.uri, stored.sha256, stored.size, name="model"))
    record = store.create_model_version(name, artifact.id, created_by="infra-check")
    store.move_alias(name, "champion", record.version, actor="infra-check",
                     reason="served for its infra check")
    return record.version


@contextmanager
def serve_folder(
    folder: str | Path,
    *,
    name: str = "candidate",
    timeouts: ServingTimeouts | None = None,
    grpc: bool = False,
) -> Iterator[tuple[str, str | None, float]]:
    """Serve a model folder through the real service from a throw-away registry.

    The folder is stored and registered in a temporary SQLite metadata store
    and artifact folder (the service loads it hash-checked, as any version);
    the service runs in that folder, so no project setting or store is read.
    """
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store

    with tempfile.TemporaryDirectory(prefix="ctloop-serve-candidate-") as tmp:
        home = Path(tmp) / ".ctloop"
        home.mkdir()
        store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
        try:
            version = register_candidate(
                store, open_artifact_store((home / "artifacts").as_uri()), folder, name)
        finally:
            store.close()
        env = {k: v for k, v in os.environ.items() if k not in _STORE_VARIABLES}
        with serve_candidate(name, version, cwd=Path(tmp), env=env, timeouts=timeouts,
                             grpc=grpc) as served:
            yield served


def summary_rows(report: ServingReport) -> list[tuple[str, str, str, str, str]]:
    """(check, rows, status, ms, detail) lines for a table."""
    rows: list[tuple[str, str, str, str, str]] = [
        (a.protocol, str(a.rows), "pass" if a.passed else "FAIL", f"{a.ms:.1f}", a.detail)
        for a in report.answers]
    if report.load is not None:
        rows.append(("load", str(report.load.rows), "pass" if report.load.passed else "FAIL",
                     f"p99 {report.load.p99_ms:.1f}", report.load.detail))
    return rows
