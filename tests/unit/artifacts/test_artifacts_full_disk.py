"""A full disk while storing an artifact leaves nothing behind and says what happened.

The disk fills after part of the object was written: every write to the store's
temporary file past a small budget fails with ``ENOSPC``, as a full volume does.
"""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from ctloop.artifacts import content, open_artifact_store, treefile
from ctloop.core.errors import StoreError


class _FullDisk:
    """A binary file that accepts ``budget`` bytes, then fails like a full volume."""

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw, self._left = raw, budget

    def write(self, data: bytes) -> int:
        if len(data) > self._left:
            self._raw.write(data[: self._left])
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return int(self._raw.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


def _fill_after(monkeypatch: pytest.MonkeyPatch, store_root: Path, budget: int) -> None:
    real_open = builtins.open

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and str(store_root) in str(file):
            return _FullDisk(handle, budget)
        return handle

    monkeypatch.setattr(content, "open", fake_open, raising=False)
    monkeypatch.setattr(treefile, "open", fake_open, raising=False)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_full_disk_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          kind: str) -> None:
    root = tmp_path / "store"
    store = open_artifact_store(str(root))
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    if kind == "folder":
        (tmp_path / "model").mkdir()
        source = source.rename(tmp_path / "model" / "weights.bin")
        source = source.parent
    (tmp_path / "small.json").write_text("{}")
    kept = store.put(tmp_path / "small.json")
    before = _leftovers(root)
    _fill_after(monkeypatch, root, budget=1 << 20)
    with pytest.raises(StoreError, match="No space left") as caught:
        store.put(source)
    assert str(source) in str(caught.value) and "nothing partial was kept" in str(caught.value)
    assert _leftovers(root) == before  # the partial temporary file is gone ...
    assert store.get(kept.uri, kept.sha256).read_text() == "{}"  # ... what was stored is intact
    monkeypatch.undo()
    stored = store.put(source)  # with space again, the same put works
    assert stored.size > 3 << 20 if kind == "folder" else stored.size == 3 << 20
