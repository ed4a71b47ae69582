"""The prediction log: segments on the artifact store's backend, indexed in a SQL database.

Writing (one writer per process; many processes, replicas and machines at once):

1. ``append`` / ``append_table`` writes the rows as a chunk of the writer's local
   write-ahead spool (:mod:`ctloop.requestlog.spool`) before returning, so they
   survive a crash of the process (and, with ``fsync``, of the machine).
2. A publisher thread, every ``publish_interval`` (default 1 s), turns the
   spooled chunks (Arrow tables, or the raw frames a writer process spools,
   built here all at once: :mod:`ctloop.requestlog.rawchunks`) into one parquet
   segment per model, uploads it under the log's root (``file://`` or ``s3://``),
   indexes it and deletes the chunks. A backend that is down only delays this:
   chunks stay on local disk and are retried.
3. A writer that died leaves its spool behind; the next writer opened on that
   machine with the same spool adopts it and publishes it exactly once.

Reading lists segments in the index (model, time range) and runs DuckDB over
them; a segment is visible once indexed, i.e. within ``publish_interval`` plus
one upload. Compaction merges small segments and retention drops old ones.
Layout under the root::

    predictions/model=<name>/<writer>-<first chunk>-<last chunk>.parquet
    predictions/model=<name>/compact-<uuid>.parquet
    labels/<writer>-<uuid>.parquet          request_id | row_id, label, labelled_at
    index.db                                the index, for a local root (SQLite)

A local folder still holding the day-partitioned parts of the log before
segments is adopted when opened (:mod:`ctloop.requestlog.legacy`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import unquote, urlparse

from ctloop.core.errors import ConfigError, CtloopError, StoreError, UserInputError
from ctloop.requestlog.entries import (
    QUARANTINE,
    Item,
    Packed,
    SchemaBook,
    build_tables,
    merge_packs,
    packed_table,
    quarantine_table,
    table_quarantine,
)
from ctloop.requestlog.index import open_index
from ctloop.requestlog.rawchunks import RawChunk, decode
from ctloop.requestlog.records import PredictionLog, PredictionRecord
from ctloop.requestlog.segments import (
    COMPACTOR,
    LogIndex,
    SegmentInfo,
    log_key,
    safe_model_folder,
)
from ctloop.requestlog.spool import Chunk, Spool, orphaned_spools
from ctloop.requestlog.tables import (
    BASE_COLUMNS,
    concat_tables,
    empty_frame,
    records_to_table,
    time_range,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ctloop.core.settings import Settings
    from ctloop.requestlog.files import SegmentStore

__all__ = [
    "BASE_COLUMNS",
    "LogOptions",
    "LogSpec",
    "ParquetPredictionLog",
    "QuarantineSummary",
    "SegmentedPredictionLog",
    "open_prediction_log",
    "records_to_table",
]

log = logging.getLogger("ctloop.monitoring")

_INDEX_FILE = "index.db"
_TEMP = ".tmp"  # under the spool root; orphaned_spools skips hidden names
_SCAN = "read_parquet(?, union_by_name = true, hive_partitioning = false)"
_MODEL_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class LogOptions:
    """The ``[ctloop.prediction_log]`` table of ctloop.toml.

    ``url``: where segments go (default: ``predictions`` under ``home`` for a
    local artifact store, ``<artifacts_url>/predictions`` for a remote one);
    ``index``: ``"metadata"`` (the metadata database, the default for remote
    roots) or ``"local"`` (``index.db`` in a local root, the default there);
    ``spool``: the local write-ahead folder (default ``<home>/spool``);
    ``publish_interval``: seconds between publishes (visibility delay);
    ``retention_days``: segments whose newest row is older are deleted by
    maintenance (0: keep forever); ``compact_interval``: seconds between
    maintenance rounds in a writer (0: only when asked); ``fsync``: make every
    write-ahead chunk durable against power loss too; ``window_rows``: at most
    this many acknowledged rows are held in memory before they are spooled
    (past that the service answers 503; within ``window_ms``, 100 ms, while the
    writer keeps up, see :mod:`ctloop.requestlog.writer`); ``log_failure``:
    ``"refuse"`` (503 while the spool cannot be written) or ``"serve"``
    (answer, count the rows as unlogged, health degraded).
    """

    url: str = ""
    index: str = ""
    spool: str = ""
    publish_interval: float = 1.0  # issue 21: half the fixed cost of 0.5 s
    retention_days: float = 0.0
    compact_interval: float = 600.0
    compact_rows: int = 1_000_000
    fsync: bool = True
    window_rows: int = 50_000
    log_failure: str = "refuse"
    writer: str = "process"

    @classmethod
    def from_settings(cls, settings: Settings) -> LogOptions:
        raw: dict[str, Any] = dict(settings.tables.prediction_log)  # checked by cls(**raw)
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"Unknown keys {unknown} in the [ctloop.prediction_log] table of ctloop.toml; "
                f"allowed: {', '.join(sorted(known))}."
            )
        for key, env in (("url", "CTLOOP_PREDICTION_LOG_URL"), ("spool", "CTLOOP_LOG_SPOOL")):
            if os.environ.get(env):
                raw[key] = os.environ[env]
        try:
            opts = cls(**raw)
            for name in ("publish_interval", "retention_days", "compact_interval"):
                object.__setattr__(opts, name, float(getattr(opts, name)))
            object.__setattr__(opts, "compact_rows", int(opts.compact_rows))
            object.__setattr__(opts, "window_rows", int(opts.window_rows))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The [ctloop.prediction_log] table is invalid: {exc}.") from None
        if opts.publish_interval <= 0 or opts.publish_interval > 60:
            raise ConfigError(
                "publish_interval in [ctloop.prediction_log] must be in (0, 60] seconds. "
                f"Got {opts.publish_interval!r}."
            )
        if opts.window_rows < 1:
            raise ConfigError(
                "window_rows in [ctloop.prediction_log] must be an int >= 1. "
                f"Got {opts.window_rows!r}."
            )
        from ctloop.requestlog.writer import check_log_failure

        check_log_failure(opts.log_failure)
        if opts.writer not in ("process", "thread"):
            raise ConfigError(
                "writer in [ctloop.prediction_log] must be 'process' or 'thread'. "
                f"Got {opts.writer!r}."
            )
        if opts.index not in ("", "metadata", "local"):
            raise ConfigError(
                f"index in [ctloop.prediction_log] must be 'metadata' or 'local'. "
                f"Got {opts.index!r}."
            )
        return opts


def open_prediction_log(
    url: str | Path | None = None,
    *,
    settings: Settings | None = None,
    flush_rows: int | None = None,
    options: LogOptions | None = None,
) -> SegmentedPredictionLog:
    """The prediction log at ``url`` (a folder, ``file://`` or ``s3://`` URL).

    Without a URL: the ``[ctloop.prediction_log]`` settings' ``url``, else
    ``predictions`` under ``home`` (local artifact store) or under the artifact
    store's URL (remote). A local root keeps its index in ``index.db`` inside
    it unless ``index = "metadata"``; a remote one uses the metadata database.
    ``flush_rows`` is accepted for older callers and ignored: every append is
    durable on return.
    """
    del flush_rows
    if settings is None:
        from ctloop.core.settings import load_settings

        settings = load_settings()
    opts = options or LogOptions.from_settings(settings)
    root = _root_url(url, settings, opts)
    remote = not root.startswith("file://")
    use_metadata = opts.index == "metadata" or (remote and opts.index != "local")
    if remote and opts.index == "local":
        raise ConfigError(
            f"The prediction log at {mask(root)} is remote: its index must be in the metadata "
            "database. Remove index = 'local' from [ctloop.prediction_log]."
        )
    if opts.spool:
        spool = Path(opts.spool).expanduser()
    elif remote:
        spool = settings.home / "spool"
    else:  # a local log keeps everything, its write-ahead spool too, in its folder
        spool = Path(unquote(urlparse(root).path)) / ".spool"
    return SegmentedPredictionLog(
        root, storage_options=settings.storage_options(root), options=opts,
        index_url=settings.metadata_url if use_metadata else None,
        spool_root=spool / log_key(root)[:16],
    )


@dataclass(frozen=True)
class LogSpec:
    """Everything needed to open the same log in another process (the writer process)."""

    url: str
    options: LogOptions
    index_url: str | None
    spool_root: Path
    storage_options: dict[str, Any]

    def open(self) -> SegmentedPredictionLog:
        """The log again, in the writer process: the server opened it (and its index,
        tables made or migrated) first."""
        return SegmentedPredictionLog(self.url, storage_options=self.storage_options,
                                      options=self.options, index_url=self.index_url,
                                      spool_root=self.spool_root, index_prepared=True)


def mask(text: str) -> str:
    try:
        from ctloop.core.secrets import mask_secrets
    except ImportError:  # pragma: no cover - the helper lands with secret masking
        return text
    return mask_secrets(text)


def _root_url(url: str | Path | None, settings: Settings, opts: LogOptions) -> str:
    if url is None or str(url) == "":
        if opts.url:
            url = opts.url
        elif settings.artifacts_url.startswith("file://") or "://" not in settings.artifacts_url:
            return (settings.home / "predictions").resolve().as_uri()
        else:
            return settings.artifacts_url.rstrip("/") + "/predictions"
    text = str(url)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme in ("s3", "s3a"):
        if not parsed.netloc:
            raise ConfigError(
                f"The prediction log URL {text!r} names no bucket: use s3://bucket/prefix."
            )
        return text.rstrip("/")
    elif parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive, not a scheme
        raise ConfigError(
            f"Prediction log URL {mask(text)!r} uses the unsupported scheme {parsed.scheme!r}. "
            "Use a folder path, a file:// URL or s3://bucket/prefix."
        )
    else:
        path = Path(text)
    path = path.expanduser().resolve()
    _check_folder(path)
    return path.as_uri()


def _writer_id() -> str:
    host = _MODEL_SAFE.sub("_", socket.gethostname())[:32]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class QuarantineSummary(TypedDict):
    """Rows of one model version set aside for one reason (``ctloop predictions status``)."""

    model_name: str | None
    model_version: int | None
    reason: str
    rows: int
    last: str | None


class SegmentedPredictionLog(PredictionLog):
    """Append-only prediction log: spooled locally, published as indexed segments."""

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any],
        options: LogOptions,
        index_url: str | None,
        spool_root: Path,
        index_prepared: bool = False,
    ) -> None:
        self.spec = LogSpec(url, options, index_url, spool_root, dict(storage_options))
        self.url = url
        self.options = options
        self.spool_root = spool_root
        self.writer = _writer_id()
        self.key = log_key(url)
        self.root: Path | None = Path(unquote(urlparse(url).path)) if url.startswith(
            "file://") else None
        self._store: SegmentStore | None = None  # see ``store``
        if self.root is None:  # a missing bucket or an unreachable endpoint: say so now
            self.store.exists("predictions")
        if index_url is None:
            assert self.root is not None
            self._ensure_local_root()
            index_url = f"sqlite:///{self.root / _INDEX_FILE}"
            self.index: LogIndex = open_index(index_url, self.key, create_tables=True)
        else:
            self.index = open_index(index_url, self.key, prepared=index_prepared)
        self._spool: Spool | None = None
        self._lock = threading.Lock()  # guards the spool
        self._publish_lock = threading.Lock()  # one publish at a time in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.published_rows = 0
        self.publish_failures = 0
        self.bad_chunks = 0
        self.publish_quarantined = 0  # rows of raw chunks found unwritable when published
        self._book = SchemaBook()  # the column types of raw chunks' tables
        self._published_seq: int | None = None  # this writer's last published chunk, once read
        self._duck: Any = None  # the readers' DuckDB connection, opened on first read
        self._duck_pid = 0
        self._duck_lock = threading.Lock()
        _remove_dead_temp_files(self.spool_root / _TEMP)
        if self.root is not None:  # parts of the log before segments: index them once
            from ctloop.requestlog.legacy import adopt_legacy_parts

            adopt_legacy_parts(self)

    @property
    def store(self) -> SegmentStore:
        """The bytes behind ``url``, opened on first use: a local folder's without fsspec
        (~5 MB of the writer process, issue 21; ~3 % of a server's cold start)."""
        if self._store is None:
            if self.root is not None:
                from ctloop.requestlog.files import LocalSegments

                self._store = LocalSegments(self.root)
            else:
                from ctloop.artifacts.remote import FsspecByteStore

                self._store = FsspecByteStore(self.url, dict(self.spec.storage_options))
        return self._store

    def __repr__(self) -> str:
        return f"SegmentedPredictionLog({mask(self.url)!r})"

    def __enter__(self) -> SegmentedPredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_local_root(self) -> None:
        assert self.root is not None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the prediction log folder {self.root}: {exc}. "
                "Point the log at a writable folder."
            ) from None

    # -- writing -----------------------------------------------------------

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Spool records durably (one write-ahead chunk); published within ``publish_interval``."""
        if records:
            self.append_table(records_to_table(records))
        elif self._closed:
            self._refuse_closed()

    def append_table(self, table: pa.Table) -> None:
        """Spool an Arrow table of log rows (columns as :func:`records_to_table` makes)."""
        if table.num_rows == 0:
            if self._closed:
                self._refuse_closed()
            return
        self._write(table)

    def append_raw(self, chunks: Sequence[RawChunk]) -> None:
        """Spool frames of encoded entries as they are (:mod:`~ctloop.requestlog.rawchunks`);
        the publisher builds their tables."""
        if chunks:
            self._write(list(chunks))  # one journal record per frame, one fdatasync
        elif self._closed:
            self._refuse_closed()

    def _write(self, chunk: pa.Table | list[RawChunk]) -> None:
        if self._closed:
            self._refuse_closed()
        with self._lock:
            if self._spool is None:
                self._spool = Spool.create(self.spool_root, self.writer, fsync=self.options.fsync)
                self._start_publisher()
            self._spool.write(chunk)

    def _refuse_closed(self) -> None:
        raise UserInputError(f"The prediction log {mask(self.url)} is closed; open it again.")

    def _start_publisher(self) -> None:
        self._thread = threading.Thread(target=self._publish_loop, name="ctloop-log-publisher",
                                        daemon=True)
        self._thread.start()

    def _publish_loop(self) -> None:
        rounds = 0
        interval = self.options.publish_interval
        maintenance_every = (
            max(1, int(self.options.compact_interval / interval))
            if self.options.compact_interval > 0 else 0
        )
        adopt_every = max(1, int(30 / interval))
        while not self._stop.wait(interval):
            rounds += 1
            try:
                self.publish()
                if rounds % adopt_every == 1:
                    self.recover()
                if maintenance_every and rounds % maintenance_every == 0:
                    self.maintain()
            except CtloopError as exc:  # the backend is down: chunks wait on local disk
                self.publish_failures += 1
                log.warning("publishing the prediction log failed (will retry): %s",
                            mask(exc.one_line()))
            except Exception:
                self.publish_failures += 1
                log.exception("publishing the prediction log failed (will retry)")

    def flush(self) -> None:
        """Publish everything spooled so far: visible to every reader on return."""
        self.publish()

    def publish(self) -> int:
        """Turn this writer's spooled chunks into indexed segments; rows published."""
        with self._publish_lock:
            with self._lock:
                spool = self._spool
            if spool is None:
                return 0
            rows = self._publish_spool(spool)
            self.published_rows += rows
            return rows

    def recover(self) -> int:
        """Publish what dead writers left in this machine's spool; rows recovered."""
        total = 0
        for orphan in orphaned_spools(self.spool_root, fsync=self.options.fsync):
            try:
                total += self._publish_spool(orphan)
            except BaseException:
                orphan.close(remove=False)
                raise
            orphan.close(remove=True)
            if total:
                log.info("recovered %d prediction log rows of writer %s", total, orphan.writer)
        return total

    def _publish_spool(self, spool: Spool) -> int:
        """Chunks -> one segment per model version (+ one quarantine segment), indexed.

        A chunk that cannot be read, or rows that cannot be written as parquet,
        are set aside (the chunk kept as ``*.bad``, the rows quarantined) so they
        never hold back the rest; a backend that is down raises (retried later).
        """
        own = spool.writer == self.writer  # only this process publishes its own spool
        chunks = self._unpublished(spool, own)
        if not chunks:
            return 0
        first, last = chunks[0].seq, chunks[-1].seq
        parts, quarantine, raw = self._read_chunks(spool, chunks)
        set_aside = 0
        if raw:
            bad, set_aside = self._build_raw(raw, parts)
            quarantine += bad
        name = f"{spool.writer}-{first:012d}-{last:012d}"
        segments, rows = self._upload_parts(name, parts, quarantine, spool.writer)
        self.index.publish(spool.writer, last, segments)
        self.publish_quarantined += set_aside
        if own:
            self._published_seq = last
        spool.remove(last)
        return rows

    def _unpublished(self, spool: Spool, own: bool) -> list[Chunk]:
        """The spool's chunks not published yet, in order (its journal is sealed: what is
        written from now on goes to the next publish; published ones are removed)."""
        chunks = spool.take()
        if not chunks:
            return []
        done = self._published_seq if own and self._published_seq is not None \
            else self.index.published_seq(spool.writer)
        spool.remove(done)  # published before a crash, not yet deleted
        return [c for c in chunks if c.seq > done]

    def _read_chunks(self, spool: Spool, chunks: list[Chunk]) -> tuple[
            dict[tuple[str, int | None], list[pa.Table]], list[pa.Table], list[Item]]:
        """Arrow chunks split per model version, quarantine tables, and raw chunks' items
        (built later, all at once); an unreadable chunk is set aside as ``*.bad``."""
        parts: dict[tuple[str, int | None], list[pa.Table]] = {}
        quarantine: list[pa.Table] = []
        raw: list[Item] = []
        for chunk in chunks:
            try:
                loaded = chunk.load()
                if isinstance(loaded, list):  # frames as the server sent them: built below
                    raw += [item for record in loaded for item in decode(record.data)]
                    continue
            except Exception as exc:  # a torn or corrupt chunk: keep it aside, go on
                if spool.set_aside(chunk, f"{type(exc).__name__}: {exc}"):
                    self.bad_chunks += 1
                continue
            if _kind(loaded) == QUARANTINE:
                quarantine.append(loaded)
                continue
            for (model, version), part in _split(loaded):
                parts.setdefault((model, version), []).append(part)
        return parts, quarantine, raw

    def _upload_parts(self, name: str, parts: dict[tuple[str, int | None], list[pa.Table]],
                      quarantine: list[pa.Table], writer: str) -> tuple[list[SegmentInfo], int]:
        """One segment per model version, then one of the quarantined rows; rows written."""
        segments = []
        rows = 0
        for (model, version), tables in parts.items():
            key = (f"predictions/model={safe_model_folder(model)}/{name}"
                   f"{'' if version is None else f'-v{version}'}.parquet")
            part = concat_tables(tables)
            try:
                segments.append(self.upload(part, key, "predictions", model, writer))
                rows += part.num_rows
            except (CtloopError, OSError):  # the backend or the local disk: retried later
                raise
            except Exception as exc:  # rows parquet cannot hold: quarantined, not retried
                log.exception("request log rows of %s cannot be written; quarantined", model)
                quarantine.append(table_quarantine(part, exc))
        if quarantine:
            table = concat_tables(quarantine)
            segments.append(self.upload(table, f"quarantine/{name}.parquet", QUARANTINE,
                                        None, writer))
            rows += table.num_rows
        return segments, rows

    def _build_raw(self, items: list[Item],
                   parts: dict[tuple[str, int | None], list[pa.Table]],
                   ) -> tuple[list[pa.Table], int]:
        """Tables of raw chunks' entries, all chunks of a publish at once (one table per
        model version and route, not per chunk), added to ``parts``; returns the quarantine
        table of what cannot be written and its rows."""
        packs = merge_packs([i for i in items if isinstance(i, Packed)])
        rest: list[Item] = [i for i in items if not isinstance(i, Packed)]
        for packed in packs:
            try:
                table = packed_table(packed, self._book)
            except Exception:  # find the entries that do not fit (build_tables does)
                rest.append(packed)
                continue
            parts.setdefault((packed.model_name, packed.model_version), []).append(table)
        if not rest:
            return [], 0
        built = build_tables(rest, self._book)
        for table in built.tables:
            for (model, version), part in _split(table):
                parts.setdefault((model, version), []).append(part)
        if not built.quarantined:
            return [], 0
        return ([quarantine_table(built.quarantined)],
                sum(e.rows for e, _ in built.quarantined))

    def upload(self, table: pa.Table, key: str, kind: str, model: str | None,
               writer: str) -> SegmentInfo:
        """Write ``table`` as the segment ``key`` under the root; the caller indexes it."""
        import pyarrow.parquet as pq

        tmp = self._temp_folder() / f"{os.getpid()}-{uuid.uuid4().hex}.parquet"
        try:
            try:
                pq.write_table(table, tmp, compression="zstd",
                               use_dictionary=_dictionary_columns(table.schema),
                               dictionary_pagesize_limit=_DICTIONARY_BYTES)
            except OSError as exc:
                raise StoreError(
                    f"Cannot write a prediction log segment under {tmp.parent}: {exc}. "
                    "Free disk space there or move the spool ('spool' in "
                    "[ctloop.prediction_log])."
                ) from exc
            size = tmp.stat().st_size
            if not self._move_into_root(tmp, key):
                self.store.put_file(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)
        ts_min, ts_max = time_range(table["ts"] if "ts" in table.column_names
                                    else table["labelled_at"])
        return SegmentInfo(path=key, kind=kind, model_name=model, ts_min=ts_min,
                           ts_max=ts_max, rows=table.num_rows, bytes=size, writer=writer)

    def _move_into_root(self, tmp: Path, key: str) -> bool:
        """Link a written segment into a local root (the spool is inside it unless
        ``spool`` points elsewhere): no copy; an existing one is kept, as ``put_file``
        keeps it. False when it must be copied instead."""
        if self.root is None:
            return False
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc
        try:
            os.link(tmp, target)
        except FileExistsError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):  # another file
                return False  # system (``spool`` elsewhere), or one without hard links
            raise self._unwritable(exc) from exc
        return True

    def _unwritable(self, exc: OSError) -> StoreError:
        return StoreError(f"Cannot write to the prediction log folder {self.root}: {exc}. "
                          "Check that it is writable and the disk is not full.")

    def _temp_folder(self) -> Path:
        """Where segments are written before upload: the log's own spool folder, never the
        system temp folder (request data stays where the project keeps it)."""
        folder = self.spool_root / _TEMP
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the prediction log's temporary folder {folder}: {exc}. "
                "Check that the spool folder is writable ('spool' in [ctloop.prediction_log])."
            ) from exc
        return folder

    def close(self) -> None:
        """Stop the publisher, publish what is spooled, release the spool."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.publish()
        finally:
            with self._lock:
                spool, self._spool = self._spool, None
            if spool is not None:
                spool.close(remove=not spool.chunks())
            self.index.close()
            self._close_duck()

    def pending(self) -> int:
        """Rows spooled by this writer but not yet published."""
        with self._lock:
            return self._spool.pending_rows() if self._spool is not None else 0

    # -- labels ------------------------------------------------------------

    def add_labels(self, labels: pd.DataFrame) -> int:
        """Store ground truth: ``request_id`` or ``row_id``, ``label``, optional ``labelled_at``.

        Durable and visible on return (one indexed label segment per call).
        """
        import pandas as pd
        import pyarrow as pa

        keys = [k for k in ("request_id", "row_id") if k in labels.columns]
        if "label" not in labels.columns or not keys:
            raise UserInputError(
                "Labels need the columns 'request_id' (or 'row_id') and 'label'. "
                f"Got columns {list(labels.columns)}."
            )
        if labels.empty:
            return 0
        if labels["label"].isna().any():
            raise UserInputError(
                f"{int(labels['label'].isna().sum())} labels are empty; every row needs a label."
            )
        try:  # numbers (0/1, a value) as float64; class names (multiclass) as text
            label = pd.to_numeric(labels["label"]).astype("float64")
            names = pa.nulls(len(labels), pa.string())
        except (TypeError, ValueError):
            label = pd.Series(float("nan"), index=labels.index)
            names = pa.array([str(v) for v in labels["label"].tolist()], pa.string())
        ids = {k: labels[k].where(labels[k].notna(), None) for k in keys}
        no_key = pd.Series(True, index=labels.index)
        for k in keys:
            no_key &= ids[k].isna()
        if no_key.any():
            raise UserInputError(
                f"{int(no_key.sum())} label rows have neither a request_id nor a row_id."
            )
        if "labelled_at" in labels.columns:
            at = pd.to_datetime(labels["labelled_at"], utc=True)
        else:
            at = pd.Series(pd.Timestamp.now(tz="UTC"), index=labels.index)

        def text(k: str) -> pa.Array:
            if k not in ids:
                return pa.nulls(len(labels), pa.string())
            return pa.array([None if v is None else str(v) for v in ids[k]], pa.string())

        table = pa.table({
            "request_id": text("request_id"),
            "row_id": text("row_id"),
            "label": pa.array(label.to_numpy(), pa.float64()),
            "label_text": names,
            "labelled_at": pa.array(at, pa.timestamp("us", tz="UTC")),
        })
        key = f"labels/{self.writer}-{uuid.uuid4().hex}.parquet"
        self.index.add([self.upload(table, key, "labels", None, self.writer)])
        return int(table.num_rows)

    # -- reading -----------------------------------------------------------

    def read(
        self,
        *,
        model_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        with_labels: bool = False,
        limit: int | None = None,
        route: str | None = None,
        include_rejected: bool = False,
        include_unserved: bool = False,
    ) -> pd.DataFrame:
        """Rows in ``[start, end)`` ordered by ``ts``; this writer's spool is published first.

        Monitors see what was answered: rejected or failed requests (status
        >= 400) and unserved (shadow) rows are left out unless asked for
        (``include_rejected``, ``include_unserved``; a ``route`` filter
        includes unserved rows of that route).
        """
        if not self._closed:
            self.flush()
            self.recover()  # a writer that died on this machine: publish what it spooled
        for attempt in range(3):  # a compaction may swap segments between listing and reading
            try:
                return self._read(model_name, start, end, with_labels, limit, route,
                                  include_rejected, include_unserved or route is not None)
            except _SegmentGone:
                if attempt == 2:
                    raise StoreError(
                        f"The prediction log {mask(self.url)} kept changing while being read "
                        "(compaction); retry."
                    ) from None
        raise AssertionError("unreachable")

    def _paths(self, segments: Sequence[SegmentInfo]) -> list[str]:
        if self.root is not None:
            return [str(self.root / s.path) for s in segments]
        return [f"{self.url}/{s.path}" for s in segments]

    def _connect(self) -> Any:
        """A DuckDB cursor of this log's one connection; the caller closes the cursor.

        Opening a connection (and loading ICU for the time zone) cost ~25 ms, twice
        per read; a cursor costs microseconds. A cursor is its own connection to the
        same in-memory database (settings and filesystem shared), so threads each
        use their own; a forked child opens a connection of its own.
        """
        import duckdb

        with self._duck_lock:
            if self._duck is None or self._duck_pid != os.getpid():
                con = duckdb.connect()
                con.execute("SET GLOBAL TimeZone = 'UTC'")  # GLOBAL: cursors inherit it
                if self.root is None:
                    from ctloop.artifacts.remote import FsspecByteStore

                    store = self.store
                    assert isinstance(store, FsspecByteStore)
                    con.register_filesystem(store.fs)
                self._duck, self._duck_pid = con, os.getpid()
            return self._duck.cursor()

    def _close_duck(self) -> None:
        with self._duck_lock:
            con, self._duck = self._duck, None
            if con is not None and self._duck_pid == os.getpid():
                con.close()

    def _read(self, model_name: str | None, start: datetime | None, end: datetime | None,
              with_labels: bool, limit: int | None, route: str | None,
              include_rejected: bool, include_unserved: bool) -> pd.DataFrame:
        segments = self.index.segments(model_name=model_name, start=start, end=end)
        if not segments:
            return empty_frame(with_labels)
        where, args = _filters(model_name, start, end, route, include_rejected,
                               include_unserved)
        sql = f"SELECT * FROM {_SCAN}"
        params: list[Any] = [self._paths(segments)]
        if where:
            sql += " WHERE " + " AND ".join(where)
        params += args
        sql = f"SELECT * FROM ({sql}) p"
        labels = self.index.segments("labels") if with_labels else []
        if labels:
            sql = _join_labels(sql, self._has_label_text(labels))
            params = [self._paths(labels), *params]
        sql += " ORDER BY ts, request_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        frame = self._query(sql, params)
        if with_labels and "label" not in frame.columns:
            frame["label"] = float("nan")
            frame["labelled_at"] = None
        elif labels:
            frame["label"] = _label_values(frame["label"])
        return frame

    def _query(self, sql: str, params: list[Any]) -> pd.DataFrame:
        """Run one read; a segment gone meanwhile is :class:`_SegmentGone` (the caller
        reads again), anything else a :class:`StoreError` naming the log, masked."""
        import duckdb

        con = self._connect()
        try:
            frame: pd.DataFrame = con.sql(sql, params=params).to_arrow_table().to_pandas()
        except duckdb.Error as exc:
            text = str(exc)
            if "No files found" in text or "No such file" in text or "does not exist" in text \
                    or "NoSuchKey" in text or "Not Found" in text:
                raise _SegmentGone from exc
            raise StoreError(
                f"Cannot read the prediction log at {mask(self.url)}: {mask(text)}. "
                "Check that its segments are ctloop parquet files and readable."
            ) from exc
        finally:
            con.close()
        return frame

    def _has_label_text(self, segments: list[Any]) -> bool:
        """Whether any label segment has the ``label_text`` column (written since class
        names could be labels); without one the query must not name it."""
        con = self._connect()
        try:
            names = con.sql(f"DESCRIBE SELECT * FROM {_SCAN}",
                            params=[self._paths(segments)]).fetchall()
        finally:
            con.close()
        return any(row[0] == "label_text" for row in names)

    def quarantined(self) -> list[QuarantineSummary]:
        """Rows set aside because they could not be written, grouped by model, version and
        reason (newest last); the rows themselves are in the quarantine segments."""
        segments = self.index.segments(QUARANTINE)
        if not segments:
            return []
        con = self._connect()
        try:
            rows = con.sql(
                f"SELECT model_name, model_version, reason, count(*) AS n, max(ts) AS last "
                f"FROM {_SCAN} GROUP BY ALL ORDER BY last NULLS FIRST",
                params=[self._paths(segments)]).fetchall()
        finally:
            con.close()
        return [QuarantineSummary(model_name=m, model_version=v, reason=r, rows=int(n),
                                  last=None if t is None else str(t))
                for m, v, r, n, t in rows]

    def segments(self, kind: str = "predictions", **filters: Any) -> list[SegmentInfo]:
        """The indexed segments (for status displays and tests)."""
        return self.index.segments(kind, **filters)

    # -- maintenance -------------------------------------------------------

    def maintain(self, now: datetime | None = None) -> dict[str, int]:
        """Retention then compaction; safe to run in every writer at once."""
        expired = self.expire(now) if self.options.retention_days > 0 else 0
        merged = self.compact()
        return {"expired": expired, "compacted": merged}

    def expire(self, now: datetime | None = None) -> int:
        """Delete segments whose newest row is older than ``retention_days``; segments gone."""
        if self.options.retention_days <= 0:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.options.retention_days)
        old = [s for s in self.index.segments() if s.ts_max is not None and s.ts_max < cutoff]
        old += [s for kind in ("labels", QUARANTINE) for s in self.index.segments(kind)
                if s.ts_max is not None and s.ts_max < cutoff]
        gone = self.index.drop(old)
        for s in old:
            self._delete_quietly(s.path)
        return gone

    def compact(self, *, target_rows: int | None = None) -> int:
        """Merge runs of small segments per model into segments of up to ``target_rows``.

        Returns the number of segments merged away. Another process compacting
        the same segments at once loses cleanly (its merged file is deleted).
        """
        target = target_rows or self.options.compact_rows
        merged = 0
        for model in [*self.index.models(), None]:
            kind = "labels" if model is None else "predictions"
            segments = self.index.segments(kind, model_name=model)
            for group in _runs(segments, target):
                merged += self._merge(group, kind, model)
        return merged

    def _merge(self, group: list[SegmentInfo], kind: str, model: str | None) -> int:
        con = self._connect()
        try:
            table = con.sql(f"SELECT * FROM {_SCAN}",
                            params=[self._paths(group)]).to_arrow_table()
        except Exception as exc:  # another compactor removed them: try again later
            log.info("compaction skipped a group: %s", mask(str(exc)))
            return 0
        finally:
            con.close()
        folder = "labels" if model is None else f"predictions/model={safe_model_folder(model)}"
        key = f"{folder}/compact-{uuid.uuid4().hex}.parquet"
        new = self.upload(table, key, kind, model, COMPACTOR)
        if not self.index.replace(group, new):
            self._delete_quietly(key)
            return 0
        for s in group:
            self._delete_quietly(s.path)
        return len(group)

    def _delete_quietly(self, key: str) -> None:
        try:
            self.store.delete(key)
        except CtloopError as exc:  # an orphan file is harmless: the index no longer lists it
            log.warning("could not delete prediction log file %s: %s", key, mask(str(exc)))


class _SegmentGone(Exception):
    """A listed segment vanished (compacted or expired) before it was read."""


def _runs(segments: Sequence[SegmentInfo], target: int) -> list[list[SegmentInfo]]:
    """Consecutive small segments grouped up to ``target`` rows; groups of two or more."""
    groups: list[list[SegmentInfo]] = []
    current: list[SegmentInfo] = []
    rows = 0
    for s in segments:
        if s.rows >= target:
            continue
        if rows + s.rows > target and current:
            groups.append(current)
            current, rows = [], 0
        current.append(s)
        rows += s.rows
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


ParquetPredictionLog = SegmentedPredictionLog  # the name older callers import


def _check_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(
            f"The prediction log path {root} is a file, not a folder. "
            "Point the log at a folder (it is created if missing)."
        )
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise ConfigError(
            f"The prediction log folder {root} is not readable. "
            "Fix its permissions or use another folder."
        )


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, aware ones converted to it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _kind(table: pa.Table) -> str:
    meta = table.schema.metadata or {}
    kind: bytes = meta.get(b"ctloop.kind", b"predictions")
    return kind.decode()


def _split(table: pa.Table) -> list[tuple[tuple[str, int | None], pa.Table]]:
    """A chunk's rows per model and version (a chunk may hold several)."""
    import pyarrow.compute as pc

    meta = table.schema.metadata or {}
    if b"ctloop.model" in meta:  # the writer labels a chunk of one model version
        return [((meta[b"ctloop.model"].decode(), int(meta[b"ctloop.version"])), table)]
    pairs = table.select(["model_name", "model_version"]).group_by(
        ["model_name", "model_version"]).aggregate([])
    if pairs.num_rows == 1:
        return [((pairs["model_name"][0].as_py(), pairs["model_version"][0].as_py()), table)]
    out = []
    for model, version in zip(pairs["model_name"].to_pylist(),
                              pairs["model_version"].to_pylist(), strict=True):
        mask = pc.and_(pc.equal(table["model_name"], model),
                       pc.equal(table["model_version"], version)
                       if version is not None else pc.is_null(table["model_version"]))
        out.append(((model, version), table.filter(mask)))
    return out


# Parquet dictionary-encodes every column by default: for columns that hold a new value
# per row that is all cost (half of a 70,000-row segment's write, issue 21) and no gain.
# Others (model, route, features) are encoded until their dictionary passes 64 KiB.
_NO_DICTIONARY = frozenset({"request_id", "row_id", "ts", "prediction", "probabilities",
                            "latency_ms", "outlier_score", "labelled_at"})
_DICTIONARY_BYTES = 64 << 10


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The parquet column paths to dictionary-encode (a list's values are
    ``<name>.list.element``)."""
    import pyarrow as pa

    out = []
    for f in schema:
        if f.name in _NO_DICTIONARY:
            continue
        nested = pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
        out.append(f"{f.name}.list.element" if nested else f.name)
    return out


def _remove_dead_temp_files(folder: Path) -> None:
    """Temporary segment files of processes that are gone (named ``<pid>-<uuid>``)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        pid = path.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _label_values(structs: pd.Series) -> pd.Series:
    """The joined ``{n, t}`` label structs as one column: float64 when every label is a
    number (as before class names could be labels), else objects (text where given)."""
    import pandas as pd

    numbers = structs.map(lambda v: v.get("n") if isinstance(v, dict) else None)
    texts = structs.map(lambda v: v.get("t") if isinstance(v, dict) else None)
    if texts.isna().all():
        return pd.to_numeric(numbers).astype("float64")
    return texts.where(texts.notna(), numbers)


def _filters(model_name: str | None, start: datetime | None, end: datetime | None,
             route: str | None, include_rejected: bool,
             include_unserved: bool) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a read and their parameters, in the order they are bound."""
    where: list[str] = []
    args: list[Any] = []
    for column, op, value in (("ts", ">=", start), ("ts", "<", end)):
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(_utc(value))
    for name, text in (("model_name", model_name), ("route", route)):
        if text is not None:
            where.append(f"{name} = ?")
            args.append(text)
    if not include_rejected:
        where.append("coalesce(status, 200) < 400")
    if not include_unserved:
        where.append("served")
    return where, args


def _join_labels(sql: str, has_label_text: bool) -> str:
    """``sql`` (the served rows, as ``p``) joined to the latest label of each request
    or row; the label segments are the first parameter."""
    text_column = "label_text" if has_label_text else "CAST(NULL AS VARCHAR)"
    return (
        # A label is a number or a class name (label_text; segments written before
        # it existed have none): the latest of either wins, as one struct.
        f"WITH l AS (SELECT *, {{'n': label, 't': {text_column}}} AS _v FROM {_SCAN}), "
        "l1 AS (SELECT request_id AS _rid, arg_max(_v, labelled_at) AS _l1, "
        "max(labelled_at) AS _a1 FROM l WHERE request_id IS NOT NULL GROUP BY 1), "
        "l2 AS (SELECT row_id AS _row, arg_max(_v, labelled_at) AS _l2, "
        "max(labelled_at) AS _a2 FROM l WHERE row_id IS NOT NULL GROUP BY 1) "
        "SELECT * EXCLUDE (_rid, _l1, _a1, _row, _l2, _a2), "
        "CASE WHEN _a2 IS NULL OR _a1 >= _a2 THEN _l1 ELSE _l2 END AS label, "
        "CASE WHEN _a2 IS NULL OR _a1 >= _a2 THEN _a1 ELSE _a2 END AS labelled_at "
        f"FROM ({sql}) p LEFT JOIN l1 ON p.request_id = l1._rid "
        "LEFT JOIN l2 ON p.row_id = l2._row"
    )
