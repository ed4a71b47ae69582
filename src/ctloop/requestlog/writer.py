"""The request log's writer: one thread from a request's arrays to the write-ahead spool.

``submit`` is the only call on the request path: it appends the request's
:class:`Entry` values (arrays it already has) to a list and returns. One writer
thread writes what is queued once the oldest entry has waited the window less
a write's duration (25 to 75 ms; at once past 4,096 rows), so
a quiet service writes a few chunks a second, a busy one large chunks: it
builds one Arrow table per group of entries (:func:`build_tables`, no Python
object per value) and spools one chunk per model
(:meth:`SegmentedPredictionLog.append_table`), which survives the process
being killed; a publisher later turns chunks into segments.

The durability contract, in ms and rows (``[ctloop.prediction_log]``):

- while the writer keeps up, an acknowledged answer is in the spool within
  ``window_ms`` (100 ms: the wait plus one chunk write);
- at most ``window_rows`` acknowledged rows (50,000) are ever held in memory
  and not yet spooled. Past that the writer is *saturated*: requests get 503
  (:class:`LogUnavailable`) and are not acknowledged. A SIGKILL therefore loses
  at most ``window_rows`` acknowledged rows, whatever the disk does;
- when the spool cannot be written (disk full, permissions, I/O error) the
  writer says so at its next chunk and from then on every request gets 503
  until a retry succeeds, or, with ``log_failure = "serve"``, is answered and
  counted as unlogged (``/metrics``; health degraded). The rows already held are
  retried every ``retry_interval``, and given up (counted as lost) only when
  the process stops with the disk still failing; shutdown never waits longer
  than ``close_timeout``;
- an entry that cannot be turned into rows (wrong types, wrong lengths) is
  quarantined with the reason (:func:`quarantine_table`), never retried, never
  in the way of other rows.

Refused and failed requests (status >= 400) and unserved rows (shadow,
explanations) are logged too but never refused for the log's sake: when the
log is failing or full they are counted as dropped instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ctloop.core.errors import ConfigError, StoreError
from ctloop.requestlog.entries import (
    Built,
    Entry,
    Item,
    Packed,
    SchemaBook,
    build_tables,
    quarantine_table,
    table_quarantine,
)
from ctloop.requestlog.rawchunks import RawChunk
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    import pyarrow as pa

    from ctloop.requestlog.batches import LogBatch

__all__ = ["Admission", "LogFailure", "LogUnavailable", "LogWriter", "RequestLogger",
           "WriterStats", "check_log_failure", "refusal"]

log = logging.getLogger("ctloop.requestlog")

LogFailure = Literal["refuse", "serve"]


class LogUnavailable(StoreError):
    """The request log cannot take the request's rows now: answered 503, never acknowledged."""

    headline = "request log unavailable"


def check_log_failure(value: object) -> LogFailure:
    if value == "refuse" or value == "serve":
        return value
    raise ConfigError(
        "log_failure in [ctloop.prediction_log] must be 'refuse' (answer 503 while the log "
        f"cannot be written) or 'serve' (answer, count as unlogged). Got {value!r}."
    )


@dataclass(frozen=True)
class WriterStats:
    """Counters of the writer since it started (``/metrics``, health, tests)."""

    written_rows: int  # in the write-ahead spool
    quarantined_rows: int  # set aside with the reason, in the quarantine
    unlogged_rows: int  # answered without a log row (log_failure = "serve")
    refused_requests: int  # answered 503 because the log could not take them
    dropped_rows: int  # rows of refused/failed requests not logged (log failing or full)
    lost_rows: int  # acknowledged rows given up when the process stopped on a failing disk
    pending_rows: int  # acknowledged, in memory, not yet spooled (<= window_rows)
    failing: str  # why the spool cannot be written now ("" when it can)
    unlogged_recently: bool  # answered unlogged within the last minute

    @property
    def degraded(self) -> bool:
        """The log cannot keep every answer now (or just could not)."""
        return bool(self.failing) or self.unlogged_recently or self.lost_rows > 0


class LogWriter(Protocol):
    """What the service holds of its request log writer: this module's thread
    (:class:`RequestLogger`) or a writer process (:mod:`ctloop.requestlog.process`)."""

    def submit(self, items: Sequence[Entry | LogBatch]) -> bool: ...

    def stats(self) -> WriterStats: ...

    def pending(self) -> int: ...

    def drain(self, timeout: float = 30.0) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def refusal(*, stopped: bool, failing: str, pending_rows: int, rows: int,
            max_pending_rows: int) -> str:
    """Why ``rows`` more rows cannot be acknowledged now ("" when they can): the one wording
    of the 503 the service answers, for the writer thread and the writer process."""
    if stopped:
        return "The request log is closed; the server is shutting down."
    if failing:
        return (f"The request log cannot write its spool ({failing}); the request "
                "was not answered so nothing unlogged is acknowledged. Free disk space or "
                "fix the spool folder; the service recovers at the next write.")
    if pending_rows and pending_rows + rows > max_pending_rows:
        return (f"The request log is {pending_rows} rows behind (window_rows = "
                f"{max_pending_rows}) and could not catch up; the request was not "
                "answered so nothing unlogged is acknowledged; retry shortly.")
    return ""


class Admission:
    """The one ``submit`` of both writers (this module's thread, the writer process's
    sender): refuse with 503, wait for room, serve unlogged, or queue.

    A subclass keeps the counters below under ``_cond`` and says what is failing, how
    many acknowledged rows it holds outside the spool, and how to queue (``_take``,
    under the lock). The common case (one entry, room for it) is a few attribute reads
    and one lock: it runs once per request."""

    _cond: threading.Condition
    _stop: bool
    max_wait: float
    max_pending_rows: int
    log_failure: LogFailure
    unlogged: int
    refused: int
    dropped_rows: int
    waited: int
    _unlogged_at: float

    def _failing(self) -> str:
        raise NotImplementedError

    def _held_rows(self) -> int:
        raise NotImplementedError

    def _take(self, entries: Sequence[Entry], rows: int) -> None:
        raise NotImplementedError

    def submit(self, items: Sequence[Entry | LogBatch]) -> bool:
        """Queue a request's entries; False when served unlogged (``log_failure = "serve"``).

        Raises :class:`LogUnavailable` (503) instead of acknowledging rows the
        log cannot make durable: the spool is failing, or ``window_rows`` rows
        are already waiting. Entries of refused requests never raise.
        """
        entries: Sequence[Entry]
        first = items[0] if len(items) == 1 else None
        if type(first) is Entry:  # one entry: the request path's case
            entries = items  # type: ignore[assignment]
            rows = len(first.request_ids)
            acknowledged = first.status < 400 and first.served
        else:
            entries = [e if isinstance(e, Entry) else _entry(e) for e in items]
            rows = sum(e.rows for e in entries)
            acknowledged = any(e.acknowledged for e in entries)
        if not rows:
            return True
        with self._cond:
            held = self._held_rows()
            if self._stop or (held and held + rows > self.max_pending_rows) or self._failing():
                return self._admit_slowly(entries, rows, acknowledged)
            self._take(entries, rows)
        return True

    def _refusal(self, rows: int) -> str:
        """Why ``rows`` more cannot be taken now ("" when they can); under the lock."""
        return refusal(stopped=self._stop, failing=self._failing(),
                       pending_rows=self._held_rows(), rows=rows,
                       max_pending_rows=self.max_pending_rows)

    def _admit_slowly(self, entries: Sequence[Entry], rows: int, acknowledged: bool) -> bool:
        """No room or no spool now: wait for room (``max_wait``), or refuse; under the lock."""
        why = self._refusal(rows)
        if why and self.max_wait > 0 and not self._failing() and acknowledged:
            self.waited += 1
            deadline = time.monotonic() + self.max_wait
            while why and not self._stop and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
                why = self._refusal(rows)
        if why:
            if not acknowledged:
                self.dropped_rows += rows
                return False
            if self.log_failure == "serve" and not self._stop:
                self.unlogged += rows
                self._unlogged_at = time.monotonic()
                return False
            self.refused += 1
            raise LogUnavailable(why)
        self._take(entries, rows)
        return True


class RequestLogger(Admission):
    """The request log's one writer thread in front of a ``PredictionLog``."""

    def __init__(
        self,
        target: PredictionLog,
        *,
        interval: float = 0.075,
        window: float = 0.1,
        max_pending_rows: int | None = None,
        max_wait: float = 0.0,
        log_failure: LogFailure | None = None,
        retry_interval: float = 0.5,
        close_timeout: float = 10.0,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        options = getattr(target, "options", None)
        self.target = target
        self.interval = interval  # the longest a queued entry waits for its write
        self.window = window  # the durability window the writes aim for (window_ms)
        self._oldest = float("inf")  # when the oldest queued entry arrived
        self._write_s = 0.005  # a write's duration, smoothed
        self._flushing = False
        self.max_pending_rows = int(max_pending_rows if max_pending_rows is not None
                                    else getattr(options, "window_rows", 50_000))
        self.max_wait = max_wait
        self.log_failure = check_log_failure(
            log_failure if log_failure is not None else getattr(options, "log_failure", "refuse"))
        self.retry_interval = retry_interval
        self.close_timeout = close_timeout
        self.on_write = on_write  # after each write, on the writer thread (a process reports)
        self.accepted = 0  # rows taken so far (submitted and not refused, or accepted)
        self.written = 0
        self.quarantined = 0
        self.unlogged = 0
        self.refused = 0
        self.dropped_rows = 0
        self.lost = 0
        self.failures = 0  # spool writes that failed
        self.waited = 0  # submits that had to wait for room (only with max_wait)
        self.failing = ""
        self._pending: list[Item | RawChunk] = []
        self._pending_rows = 0  # submitted, not yet spooled (queued, built or being written)
        # built (or raw frames), waiting for the spool
        self._unwritten: list[tuple[pa.Table | list[RawChunk], int]] = []
        self._book = SchemaBook()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ctloop-request-log", daemon=True)
        self._thread.start()

    # -- the request path --------------------------------------------------------------------

    def _failing(self) -> str:
        return self.failing

    def _held_rows(self) -> int:
        return self._pending_rows

    def _take(self, entries: Sequence[Entry], rows: int) -> None:
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.extend(entries)
        self._pending_rows += rows
        self.accepted += rows
        if self._pending_rows >= _BATCH_ROWS:
            self._cond.notify_all()

    def settled(self) -> int:
        """Rows taken so far that are no longer pending (spooled, quarantined or lost)."""
        with self._cond:
            return self.accepted - self._pending_rows

    def accept(self, entries: Sequence[Item | RawChunk]) -> None:
        """Queue entries another process already acknowledged (the writer process): never
        refused, since the refusing happened there, against the rows this writer reports."""
        rows = sum(e.rows for e in entries)
        if not rows:
            return
        with self._cond:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.extend(entries)
            self._pending_rows += rows
            self.accepted += rows
            if self._pending_rows >= _BATCH_ROWS or self.interval <= 0:
                self._cond.notify_all()

    # -- the writer thread -------------------------------------------------------------------

    def _recover(self) -> None:
        """Publish what writers that died on this machine left (at start, without traffic;
        in its own thread so a large spool never holds back this writer's rows)."""
        recover = getattr(self.target, "recover", None)
        if recover is None:
            return
        try:
            recover()
        except Exception as exc:
            log.warning("publishing dead writers' request log spools failed: %s", exc)

    def _run(self) -> None:
        threading.Thread(target=self._recover, name="ctloop-request-log-recover",
                         daemon=True).start()
        while True:
            with self._cond:
                while not self._stop and not self._unwritten and not self._due():
                    self._cond.wait(self._wait())
                if not self._pending and not self._unwritten:
                    if self._stop:
                        return
                    continue
                entries, self._pending = self._pending, []
                self._oldest = float("inf")
                stopping = self._stop
            started = time.monotonic()
            self._write(entries)
            took = time.monotonic() - started
            if self.on_write is not None:
                self.on_write()
            with self._cond:
                self._write_s = 0.8 * self._write_s + 0.2 * took
                self._cond.notify_all()
                if self._unwritten:  # the spool is failing: retry after a pause
                    if stopping and time.monotonic() >= self._give_up_at:
                        self._give_up()
                        return
                    self._cond.wait(self.retry_interval)

    def _delay(self) -> float:
        """How long the oldest queued entry may wait: the window less a write's duration
        (so it is spooled within ``window_ms`` while writes keep their pace), never less
        than 25 ms."""
        return min(self.interval, max(_MIN_WAIT_S, self.window - 2 * self._write_s))

    def _due(self) -> bool:
        """Write now: rows queued long enough (or many of them); under the lock."""
        if not self._pending:
            return False
        return (self._pending_rows >= _BATCH_ROWS or self._flushing
                or time.monotonic() - self._oldest >= self._delay())

    def _wait(self) -> float:
        if not self._pending:
            return self.window
        return max(0.001, self._oldest + self._delay() - time.monotonic())

    def _write(self, queued: list[Item | RawChunk]) -> None:
        """Build tables of the queued entries and spool them (raw frames as they are, in
        one chunk) after what failed before."""
        raws = [r for r in queued if isinstance(r, RawChunk)]
        entries = [e for e in queued if not isinstance(e, RawChunk)]
        if raws:
            self._unwritten.append((raws, sum(r.rows for r in raws)))
        if entries:
            try:
                built = build_tables(entries, self._book)
            except Exception as exc:  # a bug in the builder must not jam the log either
                log.exception("building request log rows failed; quarantining them")
                built = Built(quarantined=[
                    (e, f"{type(exc).__name__}: {exc}")
                    for item in entries
                    for e in (item.entries() if isinstance(item, Packed) else [item])])
            if built.quarantined:
                self._quarantine(quarantine_table(built.quarantined),
                                 sum(e.rows for e, _ in built.quarantined))
            self._unwritten.extend(_by_model(built.tables))
        while self._unwritten:
            table, rows = self._unwritten[0]
            try:
                self._append(table)
            except (StoreError, OSError) as exc:  # disk full, permissions, I/O: retry later
                self.failures += 1
                with self._cond:
                    first = not self.failing
                    self.failing = str(exc).split("\n")[0][:300]
                if first:
                    log.error("the request log cannot write its spool; refusing requests "
                              "until it can: %s", exc)
                return
            except Exception as exc:  # this table cannot be spooled as it is: set it aside
                log.exception("a request log chunk could not be spooled; quarantining it")
                self._unwritten.pop(0)
                if isinstance(table, list):  # raw frames: build their tables here instead
                    self._unwritten[:0] = self._built_raw(table)
                    continue
                self._quarantine(table_quarantine(table, exc), rows, counted=False)
                self._done(rows)
                continue
            self._unwritten.pop(0)
            self.written += rows
            self._done(rows)
            if self.failing:
                log.warning("the request log writes its spool again")
                with self._cond:
                    self.failing = ""

    def _quarantine(self, table: pa.Table, rows: int, *, counted: bool = True) -> None:
        """Spool a quarantine table; its rows leave the pending count either way."""
        try:
            self._append(table)
            self.quarantined += rows
        except Exception:
            log.exception("%d request log rows could not be quarantined either; lost", rows)
            self.lost += rows
        if counted:
            self._done(rows)

    def _done(self, rows: int) -> None:
        with self._cond:
            self._pending_rows -= rows

    def _built_raw(self, raws: list[RawChunk]) -> list[tuple[pa.Table | list[RawChunk], int]]:
        """Raw frames as tables to spool (a log without raw chunks, or one that failed to
        take them); what cannot be decoded or built is quarantined."""
        from ctloop.requestlog.rawchunks import decode

        items: list[Item] = []
        for raw in raws:
            try:
                items.extend(decode(raw.data))
            except Exception as exc:  # never written by this module: say so, count as lost
                log.error("%d request log rows could not be decoded (%s); lost", raw.rows, exc)
                self.lost += raw.rows
                self._done(raw.rows)
        built = build_tables(items, self._book) if items else Built()
        if built.quarantined:
            self._quarantine(quarantine_table(built.quarantined),
                             sum(e.rows for e, _ in built.quarantined))
        return list(_by_model(built.tables))

    def _append(self, table: pa.Table | list[RawChunk]) -> None:
        if isinstance(table, list):
            append_raw = getattr(self.target, "append_raw", None)
            if append_raw is None:
                raise TypeError("this log takes tables, not raw frames")
            append_raw(table)
            return
        append_table = getattr(self.target, "append_table", None)
        if append_table is not None:
            append_table(table)
            return
        from ctloop.requestlog.tables import table_records

        self.target.append(table_records(table))

    def _give_up(self) -> None:
        rows = sum(r for _, r in self._unwritten)
        log.error("stopping with %d acknowledged request log rows that could not be spooled "
                  "(%s); they are lost", rows, self.failing)
        self.lost += rows
        self._pending_rows -= rows
        self._unwritten.clear()
        self._cond.notify_all()

    # -- control -----------------------------------------------------------------------------

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                written_rows=self.written,
                quarantined_rows=self.quarantined + int(getattr(
                    self.target, "publish_quarantined", 0)),  # raw rows set aside at publish
                unlogged_rows=self.unlogged, refused_requests=self.refused,
                dropped_rows=self.dropped_rows, lost_rows=self.lost,
                pending_rows=self._pending_rows, failing=self.failing,
                unlogged_recently=time.monotonic() - self._unlogged_at < _RECENT_S)

    @property
    def write_seconds(self) -> float:
        """How long a write takes, smoothed (a writer process reports it to its sender)."""
        return self._write_s

    @property
    def dropped(self) -> int:
        """Acknowledged rows never logged: 0 unless served unlogged or lost on a failing disk."""
        return self.unlogged + self.lost

    def pending(self) -> int:
        """Rows queued (or being written) but not yet in the write-ahead spool."""
        with self._cond:
            return self._pending_rows

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is spooled (or the spool is failing)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            try:
                while self._pending_rows and not self.failing and time.monotonic() < deadline:
                    self._cond.wait(0.05)
            finally:
                self._flushing = False

    def flush(self) -> None:
        """Spool everything queued so far, then make it visible (publish)."""
        self.drain()
        self.target.flush()

    def close(self) -> None:
        """Spool what is queued (giving up after ``close_timeout`` on a failing disk), stop,
        then flush and close the log."""
        with self._cond:
            self._stop = True
            self._give_up_at = time.monotonic() + self.close_timeout
            self._cond.notify_all()
        self._thread.join(timeout=self.close_timeout + 30)
        try:
            self.target.close()
        except Exception:
            log.exception("closing the request log failed")

    _give_up_at = float("inf")
    _unlogged_at = float("-inf")


_RECENT_S = 60.0
_BATCH_ROWS = 4096  # write at once when this many rows wait
_MIN_WAIT_S = 0.025  # slow writes (a loaded disk) never turn into back-to-back tiny chunks


def _entry(batch: LogBatch) -> Entry:
    from ctloop.requestlog.batches import as_entry

    return as_entry(batch)


def _by_model(tables: list[pa.Table]) -> list[tuple[pa.Table, int]]:
    """One spool chunk per model (fewer fsyncs); versions keep their own typed columns."""
    from ctloop.requestlog.tables import concat_tables

    groups: dict[str, list[pa.Table]] = {}
    for table in tables:
        groups.setdefault(str(table["model_name"][0]), []).append(table)
    out: list[tuple[pa.Table, int]] = []
    for group in groups.values():
        try:
            merged = concat_tables(group, text_fallback=False)
        except Exception:  # two versions disagree on a column's type: one chunk each
            out.extend((_labelled(t), t.num_rows) for t in group)
            continue
        out.append((_labelled(merged), merged.num_rows))
    return out


def _labelled(table: pa.Table) -> pa.Table:
    """A chunk of one model version says so (the publisher then need not split it)."""
    import pyarrow.compute as pc

    versions = pc.unique(table["model_version"])
    if len(versions) != 1:
        return table
    return table.replace_schema_metadata({
        "ctloop.model": str(table["model_name"][0]), "ctloop.version": str(versions[0])})
