"""The infra check's probe with the protocol path: the candidate answered through the service.

The plain probe (:mod:`ctloop.models.infra_probe`) loads the model and predicts
in-process, which blessed scikit-learn models that answered HTTP 500 for two
rows: the fault was in the service's encoders, which the probe never ran. This
probe runs them. In each forked child it serves the candidate with the real
prediction service (:func:`ctloop.serving.app.create_app`: the same routes,
decoders, scoring and encoders as ``ctloop serve``) over an in-process ASGI
transport, sends 1, 2 and 100 rows over KServe v1 and Open Inference Protocol v2
and compares every answer with the in-process prediction
(:func:`ctloop.models.servingtest.check_service`). No socket or subprocess is
started, so it costs tens of milliseconds per candidate, and it is on for every
infra check; the gate's ``serving`` rule adds the load test on a real socket.

The metadata store the service reads is a copy of an empty, migrated SQLite
file made once by the probe server before it forks: migrating a new store costs
about a second, copying one a millisecond.

``python -m ctloop.serving.probe --serve`` is the probe server;
``python -m ctloop.serving.probe MODEL_DIR SAMPLE.parquet`` probes once.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from ctloop.models.infra_probe import HttpReport, ProbeReport, probe, serve

__all__ = ["protocol_report"]

NAME = "candidate"
_template: Path | None = None


def _make_template() -> None:
    """Migrate one empty metadata database, removed when this process exits."""
    global _template
    import atexit

    from ctloop.metadata import open_metadata_store

    folder = Path(tempfile.mkdtemp(prefix="ctloop-probe-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    open_metadata_store(f"sqlite:///{folder / 'metadata.db'}").close()
    _template = folder / "metadata.db"


def _empty_store(into: Path) -> Path:
    """An empty metadata database at ``into``: a copy of the template."""
    if _template is None or not _template.exists():
        _make_template()
    assert _template is not None
    shutil.copyfile(_template, into)
    return into


def protocol_report(model_dir: str, sample_path: str) -> HttpReport:
    """1, 2 and 100 rows over v1 and v2 through the service, each compared with the model."""
    import pandas as pd

    from ctloop.artifacts import open_artifact_store
    from ctloop.core.settings import Settings
    from ctloop.metadata import open_metadata_store
    from ctloop.models.flavors import load_model
    from ctloop.models.servingtest import check_service, register_candidate
    from ctloop.serving.app import create_app

    with warnings.catch_warnings():
        # starlette's TestClient still runs on httpx and says so; it is the ASGI transport
        # that also runs the app's lifespan (httpx's own does not)
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    sample = pd.read_parquet(sample_path)
    with tempfile.TemporaryDirectory(prefix="ctloop-probe-") as tmp:
        home = Path(tmp)
        store = open_metadata_store(f"sqlite:///{_empty_store(home / 'metadata.db')}")
        artifacts = open_artifact_store((home / "artifacts").as_uri())
        register_candidate(store, artifacts, model_dir, NAME)
        app = create_app(NAME, settings=Settings(home=home), metadata=store,
                         artifacts=artifacts, feature_store=False, prediction_log=False)
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                report = check_service("http://testserver", NAME, sample,
                                       load_model(model_dir), client=client)
        finally:
            store.close()
    return HttpReport(
        answers=len(report.answers),
        failures=[f"{a.protocol} with {a.rows} row(s): {a.detail}"
                  for a in report.answers if not a.passed] or list(report.failures))


def _prepare() -> None:
    """Before the first fork: the template store, and the service's imports."""
    _make_template()
    import ctloop.serving.app  # noqa: F401
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import starlette.testclient  # noqa: F401


def _probe_with_protocols(model_dir: str, sample_path: str) -> ProbeReport:
    report = probe(model_dir, sample_path)
    if report.get("error") is None:
        try:
            report["http"] = protocol_report(model_dir, sample_path)
        except Exception as exc:  # the service could not even be built on this model
            report["http"] = HttpReport(answers=0, failures=[
                f"the service failed on this model: {type(exc).__name__}: {exc}"])
    return report


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve(_probe_with_protocols, prepare=_prepare)
    else:
        sys.stdout.write(json.dumps(_probe_with_protocols(sys.argv[1], sys.argv[2])) + "\n")
