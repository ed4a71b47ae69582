"""Statistics of a partitioned dataset: one task per partition, then one merge.

A folder of parquet files (local, or ``s3://bucket/prefix``) is described
partition by partition and the partial statistics are merged with
:func:`ctloop.data.merge_statistics`: counts and moments come out exactly as
on one machine, quantiles within the quantile sketch's rank error.

Where the partitions are described follows where the step runs: on a Dask
worker the step maps its partitions onto the same cluster (``worker_client``
hands the step's thread back to the worker while it waits), elsewhere onto a
pool of threads in the step's process. Only the small partial statistics
travel; the data is read where it is described.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeAlias, TypedDict

from ctloop.components.data_validation import Statistics
from ctloop.core.errors import NotFound, UserInputError
from ctloop.data import DatasetStatistics, compute_statistics, merge_statistics
from ctloop.data.stats_json import DatasetStatisticsJson
from ctloop.pipeline import Output, component

__all__ = [
    "PartialStatistics",
    "PartitionedSummary",
    "StorageOptions",
    "compute_partitioned_statistics",
    "list_partitions",
    "partition_statistics",
    "partitioned_statistics",
]


StorageOptions: TypeAlias = dict[str, object]
"""fsspec's options for an object store (endpoint, region, credentials, ...)."""
PartialStatistics: TypeAlias = DatasetStatisticsJson
"""One partition's statistics as ``DatasetStatistics.to_dict`` writes them (a task's answer)."""


class PartitionedSummary(TypedDict):
    """What ``partitioned_statistics`` returns."""

    rows: int
    columns: int
    partitions: int


def _is_remote(source: str) -> bool:
    return "://" in source and not source.startswith("file:")


def _local_path(source: str) -> Path:
    return Path(source.removeprefix("file://")) if source.startswith("file:") else Path(source)


def list_partitions(
    source: str, *, pattern: str = "*.parquet", storage_options: StorageOptions | None = None
) -> list[str]:
    """The partition files under ``source``, sorted, as paths or URLs.

    Raises:
        NotFound: the folder does not exist or holds no file matching ``pattern``.
    """
    if _is_remote(source):
        import fsspec

        fs, root = fsspec.core.url_to_fs(source, **(storage_options or {}))
        protocol = source.split("://", 1)[0]
        found = sorted(fs.glob(f"{root.rstrip('/')}/**/{pattern}"))
        files = [f"{protocol}://{p}" for p in found]
    else:
        folder = _local_path(source)
        if not folder.is_dir():
            raise NotFound(f"The partitioned dataset {source} is not a folder. Check the path.")
        files = [str(p) for p in sorted(folder.rglob(pattern)) if p.is_file()]
    if not files:
        raise NotFound(
            f"No partitions matching {pattern!r} under {source}. Give the folder holding "
            "the parquet files (or change 'pattern')."
        )
    return files


def partition_statistics(
    path: str, storage_options: StorageOptions | None = None
) -> PartialStatistics:
    """Statistics of one partition, as a mergeable JSON-able dict (what a task returns)."""
    if not _is_remote(path):
        return compute_statistics(_local_path(path), name=path).to_dict()
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctloop.data.sources import BATCH_ROWS

    fs, key = fsspec.core.url_to_fs(path, **(storage_options or {}))
    with fs.open(key, "rb") as fh:
        pf = pq.ParquetFile(fh)
        reader = pa.RecordBatchReader.from_batches(
            pf.schema_arrow, pf.iter_batches(batch_size=BATCH_ROWS)
        )
        return compute_statistics(reader, name=path).to_dict()


Mapper: TypeAlias = Callable[
    [Callable[[str], PartialStatistics], Sequence[str]], list[PartialStatistics]]


def _on_dask_worker() -> bool:
    if "distributed" not in sys.modules:  # never import Dask just to find out
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _map_on_dask(fn: Callable[[str], PartialStatistics], items: Sequence[str]
                 ) -> list[PartialStatistics]:
    from distributed import worker_client

    token = uuid.uuid4().hex[:12]
    keys = [f"ctloop-partition-{token}-{i}" for i in range(len(items))]
    with worker_client() as client:
        futures = client.map(fn, list(items), key=keys, pure=False)
        return list(client.gather(futures))


def _map_on_threads(workers: int) -> Mapper:
    def mapper(fn: Callable[[str], PartialStatistics], items: Sequence[str]
               ) -> list[PartialStatistics]:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ctloop-part") as pool:
            return list(pool.map(fn, items))

    return mapper


def compute_partitioned_statistics(
    source: str,
    *,
    pattern: str = "*.parquet",
    storage_options: StorageOptions | None = None,
    where: str = "auto",
    workers: int | None = None,
) -> tuple[DatasetStatistics, list[str]]:
    """Statistics of every partition under ``source``, merged; and the partitions used.

    ``where`` is ``"auto"`` (the Dask cluster when running on a Dask worker,
    else threads), ``"dask"`` or ``"threads"``.
    """
    if where not in {"auto", "dask", "threads"}:
        raise UserInputError(f"The 'where' option must be auto, dask or threads. Got {where!r}.")
    partitions = list_partitions(source, pattern=pattern, storage_options=storage_options)

    def one(path: str) -> PartialStatistics:
        return partition_statistics(path, storage_options)

    use_dask = where == "dask" or (where == "auto" and _on_dask_worker())
    if use_dask:
        parts = _map_on_dask(one, partitions)
    else:
        parts = _map_on_threads(workers or min(len(partitions), os.cpu_count() or 1))(
            one, partitions
        )
    merged = merge_statistics(DatasetStatistics.from_dict(p) for p in parts)
    merged.source = source
    return merged, partitions


def _fingerprint(partitions: list[str], storage_options: StorageOptions | None) -> str:
    """Names and sizes of the partitions: what the statistics describe, for lineage."""
    import fsspec

    digest = hashlib.sha256()
    for path in partitions:
        fs, key = fsspec.core.url_to_fs(path, **(storage_options or {}))
        digest.update(f"{path}\0{fs.size(key)}\n".encode())
    return digest.hexdigest()


# A parameter naming outside data says nothing about its content, so the step
# is never a cache hit: new partitions under the same folder must be seen.
@component(version="1", cache=False)
def partitioned_statistics(
    source: str,
    stats: Output[Statistics],
    pattern: str = "*.parquet",
    storage_options: StorageOptions | None = None,
) -> PartitionedSummary:
    """Statistics of a folder of parquet partitions, one task per partition.

    Args:
        source: a folder or URL (``s3://...``) holding the partitions.
        stats: the statistics of all partitions merged.
        pattern: which files are partitions (a glob).
        storage_options: fsspec options for an object store (endpoint, region, ...).

    Not cached: new partitions can land in the folder at any time.
    """
    result, partitions = compute_partitioned_statistics(
        source, pattern=pattern, storage_options=storage_options
    )
    stats.write(result)
    stats.metadata.update(
        {
            "partitions": len(partitions),
            "source": source,
            "source_fingerprint": _fingerprint(partitions, storage_options),
        }
    )
    return {"rows": result.rows, "columns": len(result.columns), "partitions": len(partitions)}
