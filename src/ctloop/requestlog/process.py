"""The request log's writer in a process of its own: the server only hands over arrays.

Why: building Arrow tables, writing and fsyncing spool chunks and publishing parquet
segments with their index all hold the interpreter lock for milliseconds at a time. In
a thread of the server that stalls the event loop each time it wants the lock back
(after every socket read and write): with the log in a thread a 1-row request cost
1.6x the CPU and took up to twice as long as with the log off (issue 21). Here the
server keeps only the cheap part:

- the request path: ``submit`` (:class:`Admission`, shared with the thread) adds the
  request's :class:`Entry` (arrays it already has) to its group's column lists
  (:class:`Gathering`, while they are in the cache) and returns;
- a sender thread joins what is gathered once the oldest entry has waited the window less
  two of the writer's spool writes (25 to 75 ms, ``send_interval`` at most): the entries
  of one model version end to end as a few NumPy arrays (no Arrow), piped
  as one pickle to the writer process's stdin (the write releases the lock). There is
  one wait, here: the writer spools each frame on receipt, so a busy service sends ~13
  frames a second, each one chunk write;
- the writer process (``python -m ctloop.requestlog.process``, at nice +5: the event
  loop first when both want a core) runs the same :class:`RequestLogger` over the same
  log (opened from its :class:`LogSpec`): it spools each frame as received (a raw chunk,
  :mod:`ctloop.requestlog.rawchunks`: the sender's pickle, no Arrow), the publisher builds
  the tables of all of a publish's chunks at once, quarantines and publishes; after each
  write it reports its counters and its write time on its stdout, which a receiver
  thread of the server reads. (A frame holding a value a raw chunk may not hold is sent
  as items with the facts apart, built into tables on receipt, as before.) It never
  imports pandas for pyarrow's sake and uses Arrow's system allocator: its memory is
  what it holds, not what a publish once held;
- the server refuses (503, the same :func:`refusal`) against the rows it handed over
  that the writer has not yet reported spooled, so at most ``window_rows`` acknowledged
  rows are ever outside the spool, as with the thread.

Model facts (class names, outlier detector) go to the writer once per model version
(:class:`ModelFacts`), never the model.

Crashes: a SIGKILL of the server leaves the writer running: it reads its stdin to the
end, spools and publishes what it got, and exits, so only what the server still held
(at most ``send_interval``, 75 ms, of answers) is lost. A SIGKILL of both (the process group,
the OOM killer) loses what was not spooled yet: at most ``window_rows`` rows, answered
within the last ``window_ms``. A writer that dies is replaced after ``retry_interval``
(its spool is adopted and published by the next one); meanwhile requests get 503.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ctloop.core.errors import StoreError
from ctloop.requestlog.entries import Entry, Gathering, ModelFacts, Packed, facts_of
from ctloop.requestlog.rawchunks import RawChunk, encode
from ctloop.requestlog.writer import (
    Admission,
    RequestLogger,
    WriterStats,
    check_log_failure,
)

if TYPE_CHECKING:
    from ctloop.requestlog.log import LogSpec, SegmentedPredictionLog

__all__ = ["ProcessLogger", "main"]

log = logging.getLogger("ctloop.requestlog")

_HEADER = struct.Struct("<I")
_SEND_INTERVAL_S = 0.075  # the longest a queued entry waits for the sender
_MIN_SEND_S = 0.025  # a slow writer never turns into back-to-back tiny frames
_BATCH_ROWS = 4096
_RECENT_S = 60.0
_NICE = 5  # about a third of the server's CPU share when a core is contended: it keeps up


def _write_frame(out: IO[bytes], message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _read_frame(source: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream (the other side is gone)."""
    head = source.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    size = _HEADER.unpack(head)[0]
    data = source.read(size)
    if len(data) < size:
        return None
    message: tuple[Any, ...] = pickle.loads(data)  # our own child, over a private pipe
    return message


class _Child:
    """One writer process and what it reported."""

    def __init__(self, spec: LogSpec, window: float, retry_interval: float,
                 close_timeout: float) -> None:
        import ctloop

        package_root = str(Path(ctloop.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        # Arrow's default pool (mimalloc) keeps what a publish freed: ~30 MB more resident
        env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctloop.requestlog.process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.sent = 0  # rows sent to this child
        self.settled = 0  # rows it reported spooled, quarantined or lost
        self.counts: dict[str, int] = {}
        self.failing = ""
        self.write_s = 0.01  # how long its spool writes take (smoothed, reported)
        self.facts: dict[int, tuple[weakref.ref[object] | None, int]] = {}
        self.replies: dict[int, tuple[bool, str]] = {}
        _write_frame(self.stdin, ("open", spec, {"window": window,
                                                 "retry_interval": retry_interval,
                                                 "close_timeout": close_timeout}))


class ProcessLogger(Admission):
    """The request log writer of a service: a writer process behind a sender thread.

    The same calls as :class:`RequestLogger` (``submit``, ``stats``, ``pending``,
    ``drain``, ``flush``, ``close``) for a :class:`SegmentedPredictionLog`.
    """

    def __init__(
        self,
        target: SegmentedPredictionLog,
        *,
        window: float = 0.1,
        max_pending_rows: int | None = None,
        max_wait: float = 0.0,
        log_failure: str | None = None,
        retry_interval: float = 0.5,
        close_timeout: float = 10.0,
        send_interval: float = _SEND_INTERVAL_S,
    ) -> None:
        options = target.options
        self.target = target
        self.spec = target.spec
        self.window = window
        self.send_interval = send_interval
        self.max_pending_rows = int(max_pending_rows if max_pending_rows is not None
                                    else options.window_rows)
        self.max_wait = max_wait
        self.log_failure = check_log_failure(
            log_failure if log_failure is not None else options.log_failure)
        self.retry_interval = retry_interval
        self.close_timeout = close_timeout
        self.unlogged = 0
        self.refused = 0
        self.waited = 0
        self.dropped_rows = 0  # refused here (not acknowledged)
        self.lost = 0  # handed to a writer that died before reporting them
        self._base: dict[str, int] = {}  # counts of writers that died
        self._queue = Gathering()  # the entries' fields, gathered per group as submitted
        self._queue_rows = 0
        self._oldest = float("inf")
        self._flushing = False
        self._stop = False
        self._token = 0
        self._unlogged_at = float("-inf")
        self._cond = threading.Condition()
        self._pipe = threading.Lock()  # one frame at a time on the child's stdin
        self._dead = ""  # why there is no writer process now
        self._respawn_at = 0.0
        self._child: _Child | None = None
        self._spawn()
        self._sender = threading.Thread(target=self._send_loop, name="ctloop-request-log-send",
                                        daemon=True)
        self._sender.start()

    # -- the request path (submit: :class:`Admission`) ------------------------------------

    def _failing(self) -> str:
        if self._dead:
            return self._dead
        return self._child.failing if self._child is not None else ""

    def _held_rows(self) -> int:
        """Acknowledged rows not yet in the spool: queued here, or sent and not reported."""
        child = self._child
        return self._queue_rows + (0 if child is None else child.sent - child.settled)

    def _take(self, entries: Sequence[Entry], rows: int) -> None:
        queue = self._queue
        if not queue:
            self._oldest = time.monotonic()
        for entry in entries:
            queue.add(entry)
        self._queue_rows += rows
        if self._queue_rows >= _BATCH_ROWS:
            self._cond.notify_all()

    # -- the sender thread -------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start a writer process (under the lock, or before the threads start)."""
        try:
            child = _Child(self.spec, self.window,
                           self.retry_interval, self.close_timeout)
        except (OSError, ValueError) as exc:
            self._dead = f"the request log's writer process cannot start: {exc}"
            self._respawn_at = time.monotonic() + self.retry_interval
            log.error("%s", self._dead)
            return
        self._child, self._dead = child, ""
        threading.Thread(target=self._receive_loop, args=(child,),
                         name="ctloop-request-log-receive", daemon=True).start()

    def _due(self) -> bool:
        if not self._queue:
            return False
        return (self._flushing or self._stop or self._queue_rows >= _BATCH_ROWS
                or time.monotonic() - self._oldest >= self._delay())

    def _delay(self) -> float:
        """How long the oldest queued entry waits: the window less two of the writer's
        spool writes (it writes each frame on receipt), within [25 ms, ``send_interval``].
        One wait for both processes: the fewer frames, the less pickling and waking."""
        child = self._child
        write_s = 0.01 if child is None else child.write_s
        return min(self.send_interval, max(_MIN_SEND_S, self.window - 2 * write_s))

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._child is None and not self._stop \
                            and time.monotonic() >= self._respawn_at:
                        self._spawn()
                    if self._stop and (not self._queue or self._child is None):
                        self.lost += self._queue_rows  # no writer left to take them
                        return
                    if self._child is not None and self._due():
                        break
                    if not self._queue or self._child is None:
                        wait = self.retry_interval if self._child is None else self.window
                    else:
                        wait = max(0.001, self._oldest + self._delay() - time.monotonic())
                    self._cond.wait(wait)
                child = self._child
                entries, self._queue = self._queue, Gathering()
                child.sent += self._queue_rows
                self._queue_rows = 0
                self._oldest = float("inf")
                self._cond.notify_all()
            self._send(child, entries)

    def _send(self, child: _Child, entries: Gathering) -> None:
        """Join the gathered columns (one set of arrays per group) and pipe them with one
        pickle: a raw frame the writer spools as it is, or (holding a type a raw chunk may
        not) items it builds tables of first. Joining is whole-column NumPy work (~0.3 ms a
        frame of a few hundred 1-row entries), so the sender never holds the interpreter
        long enough to make a request wait."""
        packs, unpacked = entries.pack()
        batch: list[Packed | Entry] = [*packs, *unpacked]
        blob = encode([item if item.model is None or isinstance(item.model, ModelFacts)
                       else replace(item, model=facts_of(item.model)) for item in batch])
        if blob is not None:
            try:
                with self._pipe:
                    _write_frame(child.stdin, ("raw", sum(i.rows for i in batch), blob))
            except (OSError, ValueError):  # the writer died: the receiver says so
                pass
            return
        facts: list[tuple[int, ModelFacts]] = []
        items: list[tuple[int | None, Packed | Entry]] = []
        for item in batch:
            model = item.model
            key = None if model is None else self._facts_key(child, model, facts)
            items.append((key, item if model is None else replace(item, model=None)))
        try:
            with self._pipe:
                for key, fact in facts:
                    _write_frame(child.stdin, ("facts", key, fact))
                _write_frame(child.stdin, ("items", items))
        except (OSError, ValueError):  # the writer died: the receiver says so
            pass

    @staticmethod
    def _facts_key(child: _Child, model: object, new: list[tuple[int, ModelFacts]]) -> int:
        """The writer's number for ``model``'s facts; new ones are sent before the entries."""
        known = child.facts.get(id(model))
        if known is not None and (known[0] is None or known[0]() is model):
            return known[1]
        key = len(child.facts) + 1
        try:
            ref: weakref.ref[object] | None = weakref.ref(model)
        except TypeError:
            ref = None
        child.facts[id(model)] = (ref, key)
        new.append((key, facts_of(model)))  # type: ignore[arg-type]
        return key

    # -- the receiver thread -----------------------------------------------------------------

    def _receive_loop(self, child: _Child) -> None:
        while True:
            try:
                message = _read_frame(child.stdout)
            except (OSError, ValueError, pickle.UnpicklingError, EOFError):
                message = None
            if message is None:
                break
            with self._cond:
                if message[0] == "stats":
                    _, child.settled, child.counts, child.failing, child.write_s = message
                elif message[0] == "done":
                    child.replies[message[1]] = (message[2], message[3])
                self._cond.notify_all()
        code = child.proc.wait()
        with self._cond:
            if self._child is child and not self._stop:
                for name, count in child.counts.items():
                    self._base[name] = self._base.get(name, 0) + count
                lost = child.sent - child.settled
                self.lost += lost
                self._dead = f"the request log's writer process exited (code {code})"
                self._respawn_at = time.monotonic() + self.retry_interval
                self._child = None
                log.error("%s; %d rows sent to it may be lost (its spool is published by the "
                          "next one); restarting it", self._dead, lost)
            self._cond.notify_all()

    # -- control -----------------------------------------------------------------------------

    def stats(self) -> WriterStats:
        with self._cond:
            counts = dict(self._base)
            if self._child is not None:
                for name, count in self._child.counts.items():
                    counts[name] = counts.get(name, 0) + count
            return WriterStats(
                written_rows=counts.get("written", 0),
                quarantined_rows=counts.get("quarantined", 0),
                unlogged_rows=self.unlogged, refused_requests=self.refused,
                dropped_rows=self.dropped_rows + counts.get("dropped", 0),
                lost_rows=self.lost + counts.get("lost", 0),
                pending_rows=self._held_rows(), failing=self._failing(),
                unlogged_recently=time.monotonic() - self._unlogged_at < _RECENT_S)

    @property
    def dropped(self) -> int:
        s = self.stats()
        return s.unlogged_rows + s.lost_rows

    def pending(self) -> int:
        """Rows handed over (or queued) but not yet reported in the write-ahead spool."""
        with self._cond:
            return self._held_rows()

    def _ask(self, command: str, timeout: float) -> tuple[bool, str]:
        """Send ``command`` to the writer and wait for its reply: (ok, error)."""
        with self._cond:
            child = self._child
            self._token += 1
            token = self._token
        if child is None:
            return False, self._dead
        try:
            with self._pipe:
                _write_frame(child.stdin, (command, token))
        except (OSError, ValueError):
            return False, "the request log's writer process is gone"
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in child.replies and self._child is child \
                    and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return child.replies.pop(token, (False, self._dead or "no answer in time"))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is spooled (or the spool is failing)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
            try:
                while self._queue and self._child is not None \
                        and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                child = self._child
            finally:
                self._flushing = False
        if child is None:
            return
        target = child.sent
        self._ask("drain", max(0.0, deadline - time.monotonic()))
        with self._cond:
            while (self._child is child and child.settled < target and not child.failing
                   and (left := deadline - time.monotonic()) > 0):
                self._cond.wait(left)

    def flush(self) -> None:
        """Spool everything queued so far, then make it visible (the writer publishes)."""
        self.drain()
        ok, error = self._ask("flush", 120.0)
        if not ok:
            raise StoreError(f"The request log could not publish: {error}")

    def close(self) -> None:
        """Hand over what is queued, let the writer spool and publish it, and wait for it."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._sender.join(timeout=self.close_timeout + 30)
        with self._cond:
            child = self._child
        if child is not None:
            try:
                with self._pipe:
                    child.stdin.close()
            except OSError:
                pass
            try:
                child.proc.wait(timeout=self.close_timeout + 60)
            except subprocess.TimeoutExpired:
                log.error("the request log's writer process did not finish in time; killed")
                child.proc.kill()
                child.proc.wait()
        try:
            self.target.close()
        except Exception:
            log.exception("closing the request log failed")


# --- the writer process -----------------------------------------------------------------------


def main() -> None:
    """The writer process: frames on stdin, counters and replies on stdout."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s (request log writer): %(message)s")
    # A Ctrl-C or a SIGTERM to the process group is the server's to handle: it closes our
    # stdin when it stops, and we finish what we were given first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # the event loop first when both want a core: the writer has the window's slack
        os.nice(_NICE)
    except OSError:
        pass
    _arrow_without_pandas()
    from ctloop.requestlog.memory import keep_lean

    keep_lean()  # what a publish frees goes back to the system (~30 MB, issue 21)
    source, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply stream
    opened = _read_frame(source)
    if opened is None or opened[0] != "open":
        return
    spec: LogSpec = opened[1]
    settings: dict[str, float] = opened[2]
    reply = _Replies(out)
    target = spec.open()
    # interval 0: each frame is spooled on receipt (the sender already waited for it)
    writer = RequestLogger(target, interval=0.0, window=settings["window"],
                           retry_interval=settings["retry_interval"],
                           close_timeout=settings["close_timeout"])
    writer.on_write = lambda: reply.stats(writer)
    facts: dict[int, ModelFacts] = {}
    while (message := _read_frame(source)) is not None:
        kind = message[0]
        if kind == "raw":  # spooled as received; the publisher builds the tables
            writer.accept([RawChunk(message[2], message[1])])
        elif kind == "items":
            writer.accept([item if key is None else replace(item, model=facts[key])
                           for key, item in message[1]])
        elif kind == "facts":
            facts[message[1]] = message[2]
        elif kind in ("drain", "flush"):
            try:
                writer.drain() if kind == "drain" else writer.flush()
                reply.send(("done", message[1], True, ""))
            except Exception as exc:
                reply.send(("done", message[1], False, f"{type(exc).__name__}: {exc}"))
            reply.stats(writer)
    writer.close()  # the server is gone or done: spool and publish everything, then exit
    reply.stats(writer)


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not imported by the request log's writer")


def _arrow_without_pandas() -> None:
    """Make pyarrow believe pandas is absent (~50 MB of the writer's memory, issue 21).

    pyarrow imports pandas on its first conversion of a Python list, only to check the
    list is not a pandas object, and remembers the outcome: it is asked once while pandas
    cannot be imported. The writer never converts pandas objects; a model's outlier
    detector can still import pandas later to score rows."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array(["probe"])
    finally:
        sys.meta_path.remove(blocker)


class _Replies:
    """The writer's stdout: frames, one at a time; silent once the server is gone."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.gone = False

    def send(self, message: tuple[Any, ...]) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                _write_frame(self.out, message)
            except (OSError, ValueError):
                self.gone = True

    def stats(self, writer: RequestLogger) -> None:
        s = writer.stats()
        self.send(("stats", writer.settled(), {
            "written": s.written_rows, "quarantined": s.quarantined_rows,
            "dropped": s.dropped_rows, "lost": s.lost_rows}, s.failing, writer.write_seconds))


if __name__ == "__main__":
    main()
