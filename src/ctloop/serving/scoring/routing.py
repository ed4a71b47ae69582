"""Which route answers each row: the primary alias, a canary share, a sticky A/B share.

Assignment is a pure function of a salted hash, so it is deterministic and
testable: a canary row is chosen by its request id (each request id always
lands on the same side), an A/B row by the value of the key column (every row
of one ``tailnum`` goes to the same model for the whole test). Rows whose key
is null stay on the primary route. With both a canary and an A/B split, the
canary takes its share first and the A/B split its share of the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ctloop.core.lazy import lazy_module
from ctloop.serving.config import Split
from ctloop.serving.errors import InvalidRequest

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Router", "bucket"]

_SCALE = float(2**64)


def bucket(values: Sequence[object] | np.ndarray | pd.Series, seed: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per value, stable across processes and runs."""
    keys = np.asarray(pd.Series(values, dtype=object).astype(str), dtype=object)
    hashed = pd.util.hash_array(keys, hash_key=f"ctloop{seed:010d}"[-16:].rjust(16, "0"))
    return np.asarray(hashed, dtype=np.float64) / _SCALE


@dataclass(frozen=True)
class Router:
    """Routes rows to ``routes[0]`` (the primary) or to one of the splits' routes."""

    primary: str
    splits: tuple[tuple[str, Split], ...] = ()  # (route name, split)
    seed: int = 0

    @property
    def routes(self) -> list[str]:
        return [self.primary, *(name for name, _ in self.splits)]

    def assign(
        self,
        frame: pd.DataFrame | Mapping[str, Sequence[Any] | np.ndarray],
        request_ids: Sequence[str],
    ) -> np.ndarray:
        """Route index per row (0: primary, i: the i-th split); ``frame`` may be columns."""
        out = np.zeros(len(request_ids), dtype=np.int8)
        if not self.splits:  # the common case needs no pandas
            return out
        names = list(frame.columns) if isinstance(frame, pd.DataFrame) else list(frame)
        for index, (_, split) in enumerate(self.splits, start=1):
            if split.share <= 0:
                continue
            if split.key is None:
                chosen = bucket(request_ids, self.seed) < split.share
            else:
                if split.key not in names:
                    raise InvalidRequest(
                        f"The A/B split is keyed on column {split.key!r}, which the rows lack; "
                        f"they have {names}."
                    )
                column = pd.Series(np.asarray(frame[split.key], dtype=object))
                chosen = (bucket(column, self.seed) < split.share) & column.notna().to_numpy()
            out[(out == 0) & chosen] = index
        return out
