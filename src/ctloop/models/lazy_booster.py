"""A LightGBM model read from its text, the library imported only when something needs it.

``import lightgbm`` imports SciPy (always) and scikit-learn (when installed):
about 5 s and 100 MB on a busy machine, which is most of a server's cold
start. A served LightGBM model whose compiled trees are cached needs none of
it: the compiled code, the matrix layout (feature count, categories seen in
training) and the class count all come from the model text. So the flavor
loads a :class:`LazyBooster`: those answers come from the text, and any other
attribute (``predict``, ``dump_model``, ...) builds the real ``Booster`` once,
on first use, and delegates to it.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import lightgbm as lgb

    from ctloop.core.jsontypes import JSONValue

__all__ = ["LazyBooster"]


class LazyBooster:
    """A ``lightgbm.Booster`` built on first use; its shape and categories read from text."""

    __slots__ = ("__weakref__", "_booster", "_header", "_lock", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._booster: lgb.Booster | None = None
        self._lock = threading.Lock()
        self._header = _header(text)

    @property
    def booster(self) -> lgb.Booster:
        """The real ``lightgbm.Booster`` (imports LightGBM the first time)."""
        booster = self._booster
        if booster is None:
            with self._lock:
                booster = self._booster
                if booster is None:
                    from ctloop.core.plugins import require

                    lgb = require("lightgbm", "all", "Loading a LightGBM model")
                    booster = self._booster = lgb.Booster(model_str=self._text)
        return booster

    @property
    def loaded(self) -> bool:
        """Whether the library's booster was built (LightGBM imported)."""
        return self._booster is not None

    def model_to_string(self) -> str:
        return self._text

    def num_feature(self) -> int:
        return int(self._header["max_feature_idx"]) + 1

    def num_model_per_iteration(self) -> int:
        return int(self._header.get("num_tree_per_iteration", 1))

    @property
    def pandas_categorical(self) -> list[list[JSONValue]] | None:
        """Categories of each categorical column at training, as LightGBM records them."""
        tail = self._text[self._text.rfind("\npandas_categorical:") :]
        if not tail.startswith("\npandas_categorical:"):
            return None
        value = json.loads(tail.split(":", 1)[1].splitlines()[0])
        return value if isinstance(value, list) else None

    def __getattr__(self, name: str) -> Any:  # a proxy: whatever the Booster has
        if name.startswith("__") or name in LazyBooster.__slots__:
            raise AttributeError(name)  # copy/pickle probes, or not initialised yet
        return getattr(self.booster, name)

    def __getstate__(self) -> str:
        return self._text

    def __setstate__(self, text: str) -> None:
        self.__init__(text)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"LazyBooster(features={self.num_feature()}, loaded={self.loaded})"


def _header(text: str) -> dict[str, str]:
    """``key=value`` lines before the first tree."""
    head = text[: text.find("\nTree=")] if "\nTree=" in text else text
    out = {}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out
