"""``ctloop models test``: serve a candidate for real and check it before promotion.

The checks live in :mod:`ctloop.models.servingtest`; this module picks the
version and its sample, supplies the gRPC client (the protocol's stubs are the
serving layer's) and prints the verdict. Exit code 1 when the candidate fails.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctloop.cli.output import console, print_json, print_table
from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.settings import Settings, find_project_root, load_settings

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ctloop.metadata.base import ModelVersionRecord

__all__ = ["grpc_infer", "test_model"]


def grpc_infer(address: str, name: str, frame: pd.DataFrame, timeout_s: float,
               api_key: str | None = None) -> dict[str, np.ndarray]:
    """One Open Inference Protocol ModelInfer call over gRPC (typed contents), as arrays."""
    import grpc
    import numpy as np

    from ctloop.models.servingtest import v2_datatype
    from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
    from ctloop.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=name)
    for column in frame.columns:
        series = frame[column]
        datatype = v2_datatype(series)
        tensor = request.inputs.add(name=str(column), datatype=datatype, shape=[len(frame)])
        values = series.tolist()
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
        elif datatype == "INT64":
            tensor.contents.int64_contents.extend(int(v) for v in values)
        elif datatype == "FP64":
            tensor.contents.fp64_contents.extend(float(v) for v in values)
        else:
            tensor.contents.bool_contents.extend(bool(v) for v in values)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]  # generated code
        reply = stub.ModelInfer(request, timeout=timeout_s,
                                metadata=[("x-api-key", api_key)] if api_key else None)
    out: dict[str, np.ndarray] = {}
    for at, output in enumerate(reply.outputs):
        shape = list(output.shape)
        if at < len(reply.raw_output_contents):
            raw = reply.raw_output_contents[at]
            kinds = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4",
                     "INT8": "<i1", "BOOL": "?"}
            if output.datatype in kinds:
                out[output.name] = np.frombuffer(raw, dtype=kinds[output.datatype]).reshape(shape)
                continue
            values, pos = [], 0
            while pos < len(raw):  # BYTES: 4-byte little-endian length, then the bytes
                size = int.from_bytes(raw[pos:pos + 4], "little")
                values.append(raw[pos + 4:pos + 4 + size].decode())
                pos += 4 + size
            out[output.name] = np.asarray(values, dtype=object).reshape(shape)
            continue
        contents = output.contents
        for field_name in ("fp64_contents", "fp32_contents", "int64_contents", "int_contents",
                           "bool_contents", "bytes_contents", "uint64_contents", "uint_contents"):
            found = list(getattr(contents, field_name))
            if found:
                if field_name == "bytes_contents":
                    found = [v.decode() for v in found]
                out[output.name] = np.asarray(found, dtype=object).reshape(shape)
                break
        else:
            out[output.name] = np.asarray([])
    return out


def _read_frame(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    if suffix in (".feather", ".arrow"):
        return pd.read_feather(path)
    raise UserInputError(f"Cannot read {path}: give a .parquet, .csv or .feather file.")


def _training_sample(record: ModelVersionRecord, settings: Settings) -> pd.DataFrame:
    """Rows of the data the version was trained on (its lineage's first Dataset input)."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.artifacts.content import store_url_of
    from ctloop.registry.summaries import lineage_of

    inputs = [i for i in lineage_of(record.properties).get("inputs", [])
              if i["type"] == "Dataset" and i["uri"]]
    for entry in inputs:
        for url in (settings.artifacts_url, None):
            try:
                where = url or store_url_of(entry["uri"])
                store = open_artifact_store(where, storage_options=settings.storage_options(where))
                path = store.get(entry["uri"], entry["sha256"], name="training data")
            except (NotFound, UserInputError, OSError):
                continue
            return _read_frame(path / "data.parquet" if path.is_dir() else path)
    raise UserInputError(
        f"{record.name}:{record.version} has no readable training data in its lineage; pass "
        "sample rows with --data FILE (.parquet or .csv)."
    )


def test_model(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME:VERSION or NAME@ALIAS.")],
    env: Annotated[str | None, typer.Option(
        "--env", help="Environment (default: the global --env / CTLOOP_ENV).")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Test this running service instead of starting one.")] = None,
    grpc_address: Annotated[str | None, typer.Option(
        "--grpc", help="With --url: the service's gRPC HOST:PORT (default: gRPC untested).")
    ] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Sample rows (.parquet/.csv); default: the version's training data.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Load test connections.")] = None,
    duration: Annotated[float | None, typer.Option(help="Load test seconds.")] = None,
    p99_ms: Annotated[float | None, typer.Option("--p99-ms", help="p99 latency budget.")] = None,
    max_error_rate: Annotated[float | None, typer.Option(
        help="Largest acceptable share of failed requests under load.")] = None,
    no_load: Annotated[bool, typer.Option("--no-load", help="Check answers only.")] = False,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="CTLOOP_API_KEY", show_default=False,
        help="Key for a service with API keys (better: the CTLOOP_API_KEY variable).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Serve the candidate (or use --url), check v1/v2/gRPC answers for 1, 2 and 100 rows
    against the in-process prediction, then a bounded load test against a budget."""
    from ctloop.models.servingtest import (
        ServingBudget,
        ServingTimeouts,
        check_service,
        prepare_sample,
        serve_candidate,
        summary_rows,
    )
    from ctloop.registry import ModelRegistry
    from ctloop.registry.bundle import open_environment
    from ctloop.registry.refs import parse_version_ref

    settings = load_settings(env=env)
    store, artifacts, _ = open_environment(settings)
    try:
        record = ModelRegistry(store, artifacts=artifacts).get(parse_version_ref(ref))
    finally:
        store.close()
    table = {k: v for k, v in settings.tables.model_test.items()
             if k not in ("startup_timeout", "request_timeout")}
    given = {"concurrency": concurrency, "seconds": duration, "p99_ms": p99_ms,
             "max_error_rate": max_error_rate}
    budget = None if no_load else ServingBudget.from_table(
        {**table, **{k: v for k, v in given.items() if v is not None}})
    timeouts = ServingTimeouts.from_table(settings.tables.model_test)
    loaded: dict[str, Any] = {}

    def reference() -> None:
        """The in-process model and its sample (read while the service starts)."""
        ref_store, ref_artifacts, _ = open_environment(settings)
        try:
            model = ModelRegistry(ref_store, artifacts=ref_artifacts).load(
                f"{record.name}:{record.version}")
            frame = _read_frame(data) if data is not None else _training_sample(record, settings)
        finally:
            ref_store.close()
        loaded["model"], loaded["sample"] = model, prepare_sample(frame, model)
        try:  # the first predict pays lazy imports and compilation: pay it while waiting
            model.predict(loaded["sample"].head(1))
        except Exception:
            pass

    def caller(address: str, model_name: str, frame: pd.DataFrame, timeout_s: float
               ) -> dict[str, np.ndarray]:
        return grpc_infer(address, model_name, frame, timeout_s, api_key)

    if url is not None:
        reference()
        report = check_service(url.rstrip("/"), record.name, loaded["sample"], loaded["model"],
                               budget=budget, grpc_address=grpc_address,
                               grpc_infer=caller if grpc_address else None,
                               timeouts=timeouts, version=record.version, api_key=api_key)
    else:
        child_env = dict(os.environ)
        if settings.environment:
            child_env["CTLOOP_ENV"] = settings.environment
        with serve_candidate(record.name, record.version, cwd=find_project_root(),
                             env=child_env, timeouts=timeouts,
                             while_starting=reference) as (base, grpc_at, startup):
            report = check_service(base, record.name, loaded["sample"], loaded["model"],
                                   budget=budget, grpc_address=grpc_at, grpc_infer=caller,
                                   timeouts=timeouts, version=record.version, startup_s=startup,
                                   api_key=api_key)
    if json_:
        print_json(asdict(report))
    else:
        print_table(f"{record.name}:{record.version} served at {report.url}",
                    ["check", "rows", "status", "ms", "detail"], summary_rows(report))
        verdict = "PASSED" if report.passed else "FAILED: " + "; ".join(report.failures)
        console.print(f"{verdict} ({report.seconds:.1f} s, service ready in "
                      f"{report.startup_s:.1f} s)", markup=False)
    if not report.passed:
        raise typer.Exit(1)
