"""Exact fingerprints: a changed value always changes the cache key; keys survive processes.

The property tests draw values of every supported type (plain Python, NumPy,
pandas, Arrow), change one element, and require a different fingerprint; equal
values built separately must agree, within a process and across processes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ctloop.core.hashing import NotHashable, fingerprint

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
           | st.text(max_size=20) | st.binary(max_size=20))
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


def _other(value: Any) -> Any:
    """A value of the same type that is certainly different."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):  # NaN, inf: half of inf is inf
            return 0.0
        return value + 1.0 if abs(value) < 1e15 else value / 2 if value else 1.0
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, bytes):
        return value + b"x"
    return "changed"


def _mutate_plain(value: Any, path: list[int]) -> Any:
    if isinstance(value, list | tuple) and value:
        at = path[0] % len(value) if path else 0
        items = list(value)
        items[at] = _mutate_plain(items[at], path[1:])
        return type(value)(items)
    if isinstance(value, dict) and value:
        key = sorted(value)[(path[0] if path else 0) % len(value)]
        return {**value, key: _mutate_plain(value[key], path[1:])}
    if isinstance(value, list | tuple | dict):
        return type(value)(["added"]) if not isinstance(value, dict) else {"added": 1}
    return _other(value)


@SETTINGS
@given(plain, st.lists(st.integers(0, 10), max_size=5))
def test_changing_any_plain_value_changes_the_key(value: Any, path: list[int]) -> None:
    changed = _mutate_plain(value, path)
    assert fingerprint(changed) != fingerprint(value)


@SETTINGS
@given(plain)
def test_equal_plain_values_share_a_key(value: Any) -> None:
    import copy

    assert fingerprint(copy.deepcopy(value)) == fingerprint(value)


arrays: st.SearchStrategy[np.ndarray] = hnp.arrays(  # type: ignore[call-overload]
    dtype=st.sampled_from([np.int8, np.int64, np.uint32, np.float32, np.float64, np.bool_,
                           np.complex128, np.dtype("<U3"), np.dtype("M8[ns]")]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
)


def _flip(array: np.ndarray, index: int) -> np.ndarray:
    out = array.copy()
    flat = out.reshape(-1)
    i = index % flat.size
    if out.dtype.kind == "b":
        flat[i] = not flat[i]
    elif out.dtype.kind == "U":
        flat[i] = "zzzz"[: out.dtype.itemsize // 4] if flat[i] != "zzz" else "a"
    elif out.dtype.kind == "M":
        flat[i] = flat[i] + np.timedelta64(1, "ns") if not np.isnat(flat[i]) else 0
    elif out.dtype.kind in "fc":
        flat[i] = flat[i] + 1 if np.isfinite(flat[i]) and abs(flat[i]) < 1e6 else 0.5
    else:
        flat[i] = flat[i] + 1 if flat[i] < np.iinfo(out.dtype).max else 0
    return out


@SETTINGS
@given(arrays, st.integers(0, 1000))
def test_changing_any_array_element_changes_the_key(array: np.ndarray, index: int) -> None:
    changed = _flip(array, index)
    if np.array_equal(changed, array, equal_nan=False) and changed.tobytes() == array.tobytes():
        return  # the flip was a no-op (e.g. nan + 1)
    assert fingerprint(changed) != fingerprint(array)
    assert fingerprint(array.copy()) == fingerprint(array)


def test_dtype_and_shape_are_part_of_an_arrays_key() -> None:
    a = np.arange(6, dtype=np.int64)
    keys = {fingerprint(a), fingerprint(a.reshape(2, 3)), fingerprint(a.astype(np.int32)),
            fingerprint(a.astype(np.float64)), fingerprint(a.astype(">i8")),
            fingerprint(np.asfortranarray(a.reshape(2, 3)).T)}
    assert len(keys) == 6
    assert fingerprint(np.asfortranarray(a.reshape(2, 3))) == fingerprint(a.reshape(2, 3))


def test_arrays_numpy_truncates_in_repr_still_differ() -> None:
    big = np.zeros(100_000)
    other = big.copy()
    other[50_000] = 1e-12
    assert repr(big) == repr(other)  # what the old key used
    assert fingerprint(big) != fingerprint(other)


frames = st.integers(1, 30).flatmap(lambda n: st.fixed_dictionaries({
    "i": st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n),
    "f": st.lists(st.floats(allow_nan=False, width=64), min_size=n, max_size=n),
    "s": st.lists(st.text(max_size=5), min_size=n, max_size=n),
    "c": st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n),
    "n": st.lists(st.none() | st.integers(0, 9), min_size=n, max_size=n),
}))


def _frame(data: dict[str, list[Any]]) -> pd.DataFrame:
    return pd.DataFrame({
        "i": data["i"], "f": data["f"], "s": pd.Series(data["s"], dtype="str"),
        "c": pd.Categorical(data["c"], categories=["a", "b", "c"]),
        "n": pd.array(data["n"], dtype="Int64"),
    })


@SETTINGS
@given(frames, st.integers(0, 1000), st.sampled_from(["i", "f", "s", "c", "n"]))
def test_changing_any_dataframe_value_changes_the_key(data: dict[str, list[Any]], row: int,
                                                      column: str) -> None:
    frame = _frame(data)
    at = row % len(frame)
    changed_data = {k: list(v) for k, v in data.items()}
    old = changed_data[column][at]
    changed_data[column][at] = ({"a": "b", "b": "c", "c": "a"}[old] if column == "c"
                                else 1 if column == "n" and old is None
                                else None if column == "n" else _other(old))
    changed = _frame(changed_data)
    assert fingerprint(changed) != fingerprint(frame)
    assert fingerprint(_frame(data)) == fingerprint(frame)
    assert fingerprint(frame["f"]) != fingerprint(frame["i"])


def test_frame_structure_is_part_of_the_key() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    variants = [
        frame,
        frame.rename(columns={"a": "A"}),
        frame.set_axis(["x", "y", "z"]),
        frame.set_axis(pd.Index([0, 1, 2], name="row")),
        frame.astype({"a": "int32"}),
        frame[["b", "a"]],
        frame.T,
        frame.iloc[:2],
        frame.set_index("a"),
    ]
    assert len({fingerprint(v) for v in variants}) == len(variants)
    big = pd.DataFrame({"x": np.zeros(10_000)})
    nudged = big.copy()
    nudged.loc[5_000, "x"] = 1.0
    assert repr(big) == repr(nudged) and fingerprint(big) != fingerprint(nudged)


def test_series_index_and_multiindex() -> None:
    s = pd.Series([1, 2], name="n", index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)]))
    assert fingerprint(s) != fingerprint(s.rename("m"))
    assert fingerprint(s) != fingerprint(s.set_axis(pd.MultiIndex.from_tuples([("a", 1),
                                                                               ("b", 3)])))
    times = pd.Series(pd.date_range("2013-01-01", periods=3, tz="UTC"))
    assert fingerprint(times) != fingerprint(times.dt.tz_convert("US/Eastern"))


tables = st.integers(1, 20).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-100, 100) | st.none(), min_size=n, max_size=n),
    st.lists(st.text(max_size=4), min_size=n, max_size=n),
))


@SETTINGS
@given(tables, st.integers(0, 100), st.booleans())
def test_changing_any_arrow_value_changes_the_key(cols: tuple[list[Any], list[str]], row: int,
                                                  first: bool) -> None:
    ints, texts = cols
    table = pa.table({"i": pa.array(ints, pa.int64()), "s": texts})
    at = row % len(ints)
    ints2, texts2 = list(ints), list(texts)
    if first:
        ints2[at] = 0 if ints2[at] is None else None
    else:
        texts2[at] = texts2[at] + "x"
    changed = pa.table({"i": pa.array(ints2, pa.int64()), "s": texts2})
    assert fingerprint(changed) != fingerprint(table)
    half = max(1, len(ints) // 2)
    rechunked = pa.concat_tables([table.slice(0, half), table.slice(half)])
    assert fingerprint(rechunked) == fingerprint(table)  # chunking is not content
    assert fingerprint(table.column("i")) == fingerprint(rechunked.column("i"))
    assert fingerprint(table.to_batches()[0]) != fingerprint(changed.to_batches()[0])


def test_arrow_types_and_names_are_part_of_the_key() -> None:
    t = pa.table({"a": pa.array([1, 2], pa.int64())})
    assert len({fingerprint(t), fingerprint(t.cast(pa.schema([("a", pa.int32())]))),
                fingerprint(t.rename_columns(["b"])), fingerprint(pa.scalar(1)),
                fingerprint(pa.scalar(1, pa.int8()))}) == 5


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Window:
    days: int
    label: str


def test_other_standard_types() -> None:
    values = [
        1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({2}), {"a": 1}, None,
        Colour.RED, Colour.BLUE, Path("a/b"), dt.date(2013, 1, 1), dt.datetime(2013, 1, 1),
        dt.datetime(2013, 1, 1, tzinfo=dt.UTC), dt.timedelta(days=1), decimal.Decimal("1.10"),
        decimal.Decimal("1.1"), uuid.UUID(int=1), Window(1, "a"), Window(2, "a"),
        np.int64(1), np.float32(1), 10**5000,
    ]
    assert len({fingerprint(v) for v in values}) == len(values)
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({3, 1, 2}) == fingerprint({1, 2, 3})


class Opaque:
    def __init__(self, v: int) -> None:
        self.v = v


def test_unknown_types_are_not_hashable_but_can_be_registered() -> None:
    with pytest.raises(NotHashable, match="Opaque has no exact fingerprint"):
        fingerprint(Opaque(1))
    with pytest.raises(NotHashable):
        fingerprint({"nested": [Opaque(1)]})
    with pytest.raises(NotHashable):
        fingerprint(np.array([Opaque(1)], dtype=object))

    fingerprint.register(Opaque, lambda value: str(value.v))

    assert fingerprint(Opaque(1)) != fingerprint(Opaque(2))
    assert fingerprint([Opaque(1)]) == fingerprint([Opaque(1)])


_SAMPLES = """
import datetime as dt, numpy as np, pandas as pd, pyarrow as pa
from ctloop.core.hashing import fingerprint
samples = [
    {"a": [1, 2.5, "x", None, True], "b": (b"y", {3, 4})},
    np.arange(12, dtype="<f4").reshape(3, 4),
    pd.DataFrame({"i": [1, 2], "s": pd.Series(["a", None], dtype="str"),
                  "t": pd.to_datetime(["2013-01-01", "2013-06-01"]).tz_localize("UTC")}),
    pa.table({"x": [1, None, 3]}),
    dt.datetime(2013, 1, 1, 12, 30),
]
print("\\n".join(fingerprint(s) for s in samples))
"""


def test_keys_are_stable_across_processes() -> None:
    runs = [
        subprocess.run([sys.executable, "-c", _SAMPLES], capture_output=True, text=True,
                       check=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                       timeout=120).stdout.split()
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 5 and len(set(runs[0])) == 5
