"""The prediction log interface: what the serving layer writes and monitors read.

Every answered request becomes one :class:`PredictionRecord` per row. The
server appends them off the request path (batched); monitors read them back
as a DataFrame, joined with ground-truth labels that arrive later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PredictionLog", "PredictionRecord", "RequestProtocol"]

RequestProtocol = Literal["v1", "v2", "v2-grpc", "batch"]
"""How a request arrived: KServe v1 (ctloop rows), Open Inference Protocol over REST or
gRPC, or offline batch scoring (the log's and the metrics' protocol label)."""


@dataclass(frozen=True)
class PredictionRecord:
    """One scored row: who answered, with what inputs, what it said, how fast."""

    request_id: str  # unique per row; labels are joined on it
    model_name: str
    model_version: int
    route: str  # "champion" | "challenger" | "shadow" | any alias the router used
    ts: datetime  # UTC, when the prediction was made
    prediction: float
    features: dict[str, Any] = field(default_factory=dict)  # model inputs as served
    entity: dict[str, Any] = field(default_factory=dict)  # join keys, for labels by entity
    latency_ms: float = 0.0
    served: bool = True  # False for shadow predictions (logged, never returned)
    status: int = 200  # HTTP status of the answer; rejected (4xx) and failed (5xx) are logged too
    error: str = ""  # the one-line error of a rejected or failed request
    protocol: str = "v1"  # "v1" (KServe v1 / ctloop rows), "v2" (Open Inference Protocol), "batch"
    row_id: str | None = None  # the caller's row id (a loop's ``id`` column), for label joins
    decision: int | None = None  # the class decided at the model's cost-aware threshold
    outlier_score: float | None = None  # how unusual the row is against the training data
    missing: tuple[str, ...] = ()  # model inputs the online store could not fill


@runtime_checkable
class PredictionLog(Protocol):
    """Append-only log of predictions, plus the labels that arrive later."""

    url: str

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Add records; must be cheap enough to call from a request handler's background task."""
        ...

    def flush(self) -> None:
        """Make everything appended so far visible to readers."""
        ...

    def read(
        self,
        *,
        model_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        with_labels: bool = False,
    ) -> pd.DataFrame:
        """Records in ``[start, end)`` as a frame (feature columns flattened as ``f_<name>``).

        With ``with_labels``, a ``label`` column joined on ``request_id`` (null
        where no label arrived yet).
        """
        ...

    def add_labels(self, labels: pd.DataFrame) -> int:
        """Store ground truth: a frame with ``request_id`` and ``label``; returns rows stored."""
        ...

    def close(self) -> None: ...
