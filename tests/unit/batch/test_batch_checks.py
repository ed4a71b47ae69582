"""``invalid_rows``: the rows the service would refuse, with the service's message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.batch.checks import invalid_rows
from ctloop.core.errors import UserInputError
from ctloop.models.signature import Signature


@pytest.fixture
def signature() -> Signature:
    clean = pd.DataFrame({"hour": [5, 6], "carrier": ["AA", "B6"], "temp": [1.5, 2.0]})
    return Signature.from_frame(clean, ["hour", "carrier", "temp"], nullable=["temp"])


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_every_refused_row_is_found_with_the_services_words(signature: Signature,
                                                            n: int) -> None:
    frame = pd.DataFrame({"hour": np.arange(n, dtype=float) % 24,
                          "carrier": ["AA"] * n, "temp": np.full(n, np.nan)})
    bad = {0, n - 1} | ({7, 500, 501} if n > 2 else set())
    frame.loc[sorted(bad), "hour"] = np.nan
    frame.loc[sorted(bad - {n - 1}), "carrier"] = None  # bad twice: the first column's words
    found = invalid_rows(signature, frame)
    assert set(found) == bad
    for row in bad:
        with pytest.raises(UserInputError) as served:  # what the service says of that row
            signature.conform({str(c): [None if pd.isna(v) else v] for c, v in
                               frame.loc[row].items()}, what="The input rows")
        assert found[row].replace("NaN values", "nulls") == served.value.message
    assert invalid_rows(signature, frame.drop(index=sorted(bad))) == {}
