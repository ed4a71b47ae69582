"""Labels for served predictions: ``ctloop feedback NAME FILE``.

The file (parquet or CSV) holds ``label`` plus ``request_id`` (the id the
service answered with) or ``row_id`` (the caller's row id, a loop's ``id``
column). Labels go to the prediction log through ``PredictionLog.add_labels``,
the same call the HTTP feedback route makes, so live and replay share one join.

Visibility: a label file is written atomically when this command returns, and
every monitor reads the log afresh, so the next monitor run (the loop
controller's next tick) sees it. A served request is visible once the
service's request logger has flushed it: at most ``flush_rows`` rows or one
flush interval after the answer, and always at service shutdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.settings import Settings

__all__ = ["deliver_labels", "read_labels"]


def read_labels(file: Path) -> pd.DataFrame:
    """The labels file as a frame, with a one-line error for anything unusable."""
    if not file.is_file():
        raise UserInputError(f"Labels file {str(file)!r} does not exist.")
    try:
        frame = pd.read_csv(file) if file.suffix.lower() == ".csv" else pd.read_parquet(file)
    except Exception as exc:
        raise UserInputError(f"Cannot read labels file {file}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}") from None
    if "label" not in frame.columns or not ({"request_id", "row_id"} & set(frame.columns)):
        raise UserInputError(f"Labels file {file.name} needs a 'label' column and a "
                             f"'request_id' or 'row_id' column; it has {list(frame.columns)}.")
    if frame["label"].isna().any():
        raise UserInputError(f"Labels file {file.name}: {int(frame['label'].isna().sum())} "
                             "rows have no label; drop them first.")
    return frame


def deliver_labels(name: str, file: Path, settings: Settings, *, strict_ids: bool = False,
                   keep_unknown: bool = False, on_duplicate: str = "reject") -> dict[str, Any]:
    """Store the labels of ``file`` for loop (or model) ``name``; nothing is stored on error.

    Every label must fit the version that served its row (``ctloop.models.labels``).
    Labels for ids the log has not seen are counted and left out (``strict_ids``: refused;
    ``keep_unknown``: stored, for requests still being logged). One id, one label: conflicting
    labels follow ``on_duplicate`` (``reject``, ``first`` or ``last``) and are counted.
    """
    from ctloop.loop.declaration import load_loops
    from ctloop.models.labels import resolve_duplicates
    from ctloop.requestlog.log import open_prediction_log

    loops = load_loops(settings)
    model = loops[name].model if name in loops else name
    frame = read_labels(file)
    log = open_prediction_log(str(settings.tables.serving.get("prediction_log") or "") or None,
                              settings=settings)
    try:
        served = log.read(model_name=model)
        if served.empty:
            raise UserInputError(f"No predictions of {model!r} are logged yet (loops: "
                                 f"{', '.join(loops) or 'none'}); serve first, then label.")
        labels = _to_request_ids(frame, served)
        known = labels["request_id"].notna() & labels["request_id"].astype(str).isin(
            served["request_id"].astype(str))
        unknown = int((~known).sum())
        if unknown and strict_ids:
            example = labels.loc[~known].iloc[0]
            key = "row_id" if "row_id" in labels.columns else "request_id"
            raise UserInputError(
                f"{unknown} of {len(frame)} labels name no served prediction of {model!r} "
                f"(e.g. {key} {str(example[key])!r}); nothing was stored. Check the ids, or "
                "leave out --strict to store the others.")
        if not keep_unknown:
            labels = labels[known]
        ids = labels["request_id"].astype(object)
        if "row_id" in labels.columns:  # an unknown row id keeps its row id as the key
            ids = ids.where(ids.notna(), labels["row_id"])
        kept, conflicts = resolve_duplicates(labels.assign(id=ids), "id", on_duplicate)
        _check_against_versions(kept, served, model, settings)
        columns = [c for c in ("request_id", "row_id") if c in kept.columns]
        stored = log.add_labels(kept[[*columns, "label"]]) if len(kept) else 0
    finally:
        log.close()
    return {"model": model, "stored": stored, "matched": int(known.sum()), "rows": len(frame),
            "unknown": unknown, "unknown_stored": unknown if keep_unknown else 0,
            "conflicts": conflicts, "on_duplicate": on_duplicate}


def _check_against_versions(labels: pd.DataFrame, served: pd.DataFrame, model: str,
                            settings: Settings) -> None:
    """Each label against the task and classes of the version that served its row."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store
    from ctloop.models.labels import check_labels
    from ctloop.registry import ModelRegistry

    version_of = dict(zip(served["request_id"].astype(str),
                          served["model_version"], strict=True))
    versions = labels["request_id"].astype(str).map(version_of)
    if versions.isna().all():
        return
    store = open_metadata_store(settings.metadata_url)
    try:
        registry = ModelRegistry(store)
        artifacts = open_artifact_store(settings.artifacts_url)
        for version in sorted(versions.dropna().unique()):
            loaded = registry.load(f"{model}:{int(version)}", artifacts)
            rows = labels[versions == version]
            check_labels(rows["label"], loaded.task, loaded.signature.classes,
                         model=f"{model}:{int(version)}", ids=rows["request_id"])
    finally:
        store.close()


def _to_request_ids(frame: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    """Row ids joined to the request ids the service logged them under (None: unknown)."""
    if "request_id" in frame.columns:
        return frame
    if "row_id" in served.columns and served["row_id"].notna().any():
        ids = served.dropna(subset=["row_id"]).drop_duplicates("row_id", keep="last")
        mapping = dict(zip(ids["row_id"].astype(str), ids["request_id"].astype(str),
                           strict=True))
    else:  # a loop sends its id column as the request id: the ids are the same
        mapping = {str(r): str(r) for r in served["request_id"]}
    # Row ids no served prediction carries keep no request id (counted as unknown).
    return frame.assign(request_id=frame["row_id"].astype(str).map(mapping))
