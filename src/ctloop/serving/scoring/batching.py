"""Adaptive micro-batching: concurrent requests for one model version share one predict call.

A request's rows join the pending batch of its version and the batch is
scored on the next turn of the event loop, after every handler that is
already runnable has added its rows: under load, requests coalesce with no
added wait; a lone request is scored at once. ``max_wait`` (seconds, default
0) lets a batch wait a little longer for company, bounded; ``max_rows`` caps
a batch. Batches of more than ``inline_rows`` rows are scored on a model
thread, so one large request never stalls the event loop; small ones are
scored inline, which costs less than the hop to a thread. Requests that carry
their rows as one float block (``score_matrix`` given) are scored, and
coalesced, as blocks.

If a coalesced predict fails, each request is scored alone, so one bad
request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BatchStats", "MicroBatcher"]

Columns = Mapping[str, np.ndarray]


@dataclass
class BatchStats:
    """How well requests coalesced: predict calls, requests and rows scored."""

    calls: int = 0
    requests: int = 0
    rows: int = 0
    largest: int = 0


Item = tuple[Columns, int, "asyncio.Future[np.ndarray]", np.ndarray | None]


@dataclass
class _Pending:
    items: list[Item] = field(default_factory=list)
    rows: int = 0


class MicroBatcher:
    """Coalesces ``submit`` calls for one predictor; one instance per loaded version."""

    inline_alone = True

    def __init__(
        self,
        predict: Callable[[Columns], np.ndarray],
        *,
        executor: ThreadPoolExecutor,
        max_wait: float = 0.0,
        max_rows: int = 4096,
        inline_rows: int = 512,
        score_matrix: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.predict = predict
        self.score_matrix = score_matrix
        self.executor = executor
        self.max_wait = max_wait
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self.stats = BatchStats()
        self._pending = _Pending()
        self._scheduled = False
        self._turn = False  # a request was scored inline in this turn of the loop

    async def submit(self, columns: Columns, rows: int,
                     matrix: np.ndarray | None = None) -> np.ndarray:
        """Scores for ``rows`` rows, computed together with whatever else is pending;
        ``matrix``: the same rows as one float64 block in signature order."""
        if self.score_matrix is None:
            matrix = None
        loop = asyncio.get_running_loop()
        if rows >= self.inline_rows:  # large on its own: no point waiting for company
            return await loop.run_in_executor(self.executor, self._one, columns, matrix)
        if (self.inline_alone and self.max_wait <= 0 and not self._turn
                and not self._pending.items):
            # The first request in this turn of the event loop: nothing to coalesce with
            # yet, so it is scored now, with no future and no extra turn. Any other request
            # that arrives in the same turn (a burst) waits for the batch as before. With
            # ``max_wait`` set the user asked every request to wait for company, this one too.
            self._turn = True
            loop.call_soon(self._end_turn)
            self.stats.calls += 1
            self.stats.requests += 1
            self.stats.rows += rows
            self.stats.largest = max(self.stats.largest, rows)
            return self._one(columns, matrix)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.items.append((columns, rows, future, matrix))
        self._pending.rows += rows
        if self._pending.rows >= self.max_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            if self.max_wait > 0:
                loop.call_later(self.max_wait, self._flush)
            else:
                loop.call_soon(self._flush)
        return await future

    def _one(self, columns: Columns, matrix: np.ndarray | None) -> np.ndarray:
        if matrix is None or self.score_matrix is None:
            return self.predict(columns)
        return self.score_matrix(matrix)

    def _end_turn(self) -> None:
        self._turn = False

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, _Pending()
        if not pending.items:
            return
        items = pending.items
        self.stats.calls += 1
        self.stats.requests += len(items)
        self.stats.rows += pending.rows
        self.stats.largest = max(self.stats.largest, pending.rows)
        if pending.rows > self.inline_rows:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(self.executor, self._score, items)
            task.add_done_callback(lambda done: done.exception())  # errors reach the futures
            return
        self._score(items)

    def _score(self, items: list[Item]) -> None:
        try:
            if len(items) == 1:
                scores = [self._one(items[0][0], items[0][3])]
            else:
                blocks = [m for _, _, _, m in items if m is not None]
                if self.score_matrix is not None and len(blocks) == len(items):
                    whole = self.score_matrix(np.concatenate(blocks))
                else:
                    names = list(items[0][0])
                    merged = {n: np.concatenate([c[n] for c, _, _, _ in items]) for n in names}
                    whole = self.predict(merged)
                bounds = np.cumsum([rows for _, rows, _, _ in items])[:-1]
                scores = np.split(whole, bounds)
        except Exception as exc:
            if len(items) > 1:  # find the one that fails; the others still get answers
                for item in items:
                    self._score([item])
                return
            _resolve(items[0][2], None, exc)
            return
        for (_, _, future, _), part in zip(items, scores, strict=True):
            _resolve(future, part, None)


def _resolve(
    future: asyncio.Future[np.ndarray], result: np.ndarray | None, error: Exception | None
) -> None:
    """Settle ``future`` on its own loop (this may run on a model thread)."""
    loop = future.get_loop()

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        loop.call_soon_threadsafe(settle)
