"""Pipelines used by the engine tests; behaviour is steered through files in CTLOOP_TEST_DIR."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ctloop.pipeline import Dataset, Input, Metrics, Output, command_component, component, pipeline


def _box() -> Path:
    return Path(os.environ["CTLOOP_TEST_DIR"])


def _count(name: str) -> None:
    with open(_box() / f"ran-{name}", "a") as fh:
        fh.write(f"{os.getpid()}\n")


@component
def source(n: int, out: Output[Dataset]) -> dict:
    import pandas as pd

    _count(f"source-{n}")
    out.write(pd.DataFrame({"x": list(range(n))}))
    return {"n": n}


@component
def slow(data: Input[Dataset], seconds: float, out: Output[Dataset]) -> dict:
    start = time.time()
    _count("slow")
    (_box() / "slow-started").write_text(str(os.getpid()))
    if not (_box() / "fast").exists():
        time.sleep(seconds)
    out.write(data.read())
    return {"start": start, "end": time.time()}


@component
def meet(data: Input[Dataset], out: Output[Dataset]) -> dict:
    """Arrive, then wait for a second ``meet`` step to arrive: a rendezvous, not a sleep, so
    two steps run at once however loaded the machine (run one at a time, the first waits
    out the bound and the intervals do not overlap)."""
    import uuid

    from ctloop.testing.services import patience

    start = time.time()
    (_box() / f"meet-{uuid.uuid4().hex}").touch()
    deadline = time.monotonic() + patience(60)
    while len(list(_box().glob("meet-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    out.write(data.read())
    return {"start": start, "end": time.time()}


@component
def total(a: Input[Dataset], b: Input[Dataset], metrics: Output[Metrics]) -> int:
    _count("total")
    if (_box() / "fail-total").exists():
        raise RuntimeError("total was told to fail")
    value = int(a.read()["x"].sum() + b.read()["x"].sum())
    metrics.log("total", value)
    return value


@component(retries=2, retry_backoff=0.05)
def flaky(data: Input[Dataset], out: Output[Dataset]) -> int:
    _count("flaky")
    runs = len((_box() / "ran-flaky").read_text().splitlines())
    if runs < 3:
        raise ConnectionError(f"transient failure {runs}")
    out.write(data.read())
    return runs


@pipeline
def diamond(n: int = 10, seconds: float = 0.0):
    a = source(n=n)
    b = source(n=n + 1)
    left = slow(data=a, seconds=seconds)
    right = slow(data=b, seconds=seconds)
    total(a=left, b=right)


@pipeline
def rendezvous(n: int = 3):
    """``diamond`` with its two middle steps meeting each other."""
    total(a=meet(data=source(n=n)), b=meet(data=source(n=n + 1)))


@pipeline
def retrying(n: int = 5):
    flaky(data=source(n=n))


@component
def writes_nothing(out: Output[Dataset]) -> None:
    pass


@pipeline
def forgetful():
    writes_nothing()


byte_count = command_component(
    "byte_count",
    ["sh", "-c", "wc -c < {inputs.data} | tr -d ' ' > {outputs.out}; echo {params.label}"],
    inputs={"data": Dataset},
    outputs={"out": Metrics},
    parameters={"label": "hello"},
)

failing_command = command_component(
    "failing_command", ["sh", "-c", "echo broken input >&2; exit 3"],
    inputs={"data": Dataset},
)


@pipeline
def shell(n: int = 4):
    byte_count(data=source(n=n), label="counted")


@pipeline
def shell_fails():
    failing_command(data=source(n=2))


@component(requirements=["six==1.16.0"])
def old_six(out: Output[Metrics]) -> str:
    import six

    out.log("six", six.__version__)
    return six.__version__


@component(requirements=["six==1.17.0"])
def new_six(out: Output[Metrics]) -> str:
    import six

    out.log("six", six.__version__)
    return six.__version__


@pipeline
def two_sixes():
    old_six()
    new_six()


@component(cache=False)
def who_am_i() -> dict:
    from ctloop.pipeline.context import current_step

    ctx = current_step()
    assert ctx is not None
    return {"run_id": ctx.run_id, "step": ctx.step, "metadata_url": ctx.metadata_url}


@pipeline
def introspective():
    who_am_i()


@component
def half_done(data: Input[Dataset], report: Output[Metrics]) -> None:
    report.write({"checked": len(data.read())})
    raise ValueError("found a problem after writing the report")


@pipeline
def reports_then_fails():
    half_done(data=source(n=3))
