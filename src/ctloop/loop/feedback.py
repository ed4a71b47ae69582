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


def deliver_labels(name: str, file: Path, settings: Settings) -> dict[str, Any]:
    """Store the labels of ``file`` for loop (or model) ``name``; nothing is stored on error."""
    from ctloop.loop.declaration import load_loops
    from ctloop.requestlog.log import open_prediction_log

    loops = load_loops(settings)
    model = loops[name].model if name in loops else name
    frame = read_labels(file)
    serving = settings.extra.get("serving", {}) or {}
    log = open_prediction_log(serving.get("prediction_log") or None, settings=settings)
    try:
        served = log.read(model_name=model)
        if served.empty:
            raise UserInputError(f"No predictions of {model!r} are logged yet (loops: "
                                 f"{', '.join(loops) or 'none'}); serve first, then label.")
        labels = _to_request_ids(frame, served)
        matched = int(labels["request_id"].astype(str).isin(
            served["request_id"].astype(str)).sum())
        stored = log.add_labels(labels[["request_id", "label"]])
    finally:
        log.close()
    return {"model": model, "stored": stored, "matched": matched, "rows": len(frame)}


def _to_request_ids(frame: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    """Row ids joined to the request ids the service logged them under."""
    if "request_id" in frame.columns:
        return frame
    if "row_id" in served.columns and served["row_id"].notna().any():
        ids = served.dropna(subset=["row_id"]).drop_duplicates("row_id", keep="last")
        mapping = dict(zip(ids["row_id"].astype(str), ids["request_id"].astype(str),
                           strict=True))
    else:  # a loop sends its id column as the request id: the ids are the same
        mapping = {str(r): str(r) for r in served["request_id"]}
    request_ids = frame["row_id"].astype(str).map(mapping)
    unknown = int(request_ids.isna().sum())
    if unknown == len(frame):
        raise UserInputError(f"None of the {len(frame)} row ids match a served prediction; "
                             "check the id column.")
    out = frame.assign(request_id=request_ids)
    return out[out["request_id"].notna()]
