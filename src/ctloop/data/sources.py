"""Turn whatever a person hands us into a stream of Arrow record batches.

Statistics are computed batch by batch so a file larger than memory is never
loaded whole, and peak memory is bounded by a batch, not by the file:

- parquet is read one column at a time (:func:`iter_column_batches`), since a
  row group (a million rows by default) is decoded whole whatever the batch
  size: one column of a row group is a few MB, all of them hundreds;
- CSV is parsed by Arrow's streaming reader in small blocks, with the column
  types (and delimiter, quoting and header) sniffed by DuckDB from a sample,
  so a column that is empty in its first rows keeps the right type (DuckDB's
  own streaming reader reads ahead, and its memory grew with the file);
- DataFrames and Arrow tables are sliced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias, TypedDict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ctloop.core.errors import UserInputError
from ctloop.core.paths import require_path

__all__ = [
    "BATCH_ROWS",
    "DataSource",
    "describe_source",
    "iter_batches",
    "iter_column_batches",
    "read_table",
]

# Rows per batch: big enough to amortise per-batch overhead, small enough to
# keep memory flat (20 float columns x 256k rows ~ 40 MB).
BATCH_ROWS = 1 << 18

# Bytes of CSV parsed at a time: Arrow's reader keeps a few blocks in flight.
CSV_BLOCK_BYTES = 1 << 20

_SNIFF_BUFFER = 4 << 20  # bytes DuckDB reads at a time while guessing types (> longest line)

# What a CSV file may write for "no value"; pandas' usual spellings.
_CSV_NULLS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]

DataSource: TypeAlias = str | Path | pd.DataFrame | pa.Table | pa.RecordBatch | pa.RecordBatchReader


def describe_source(source: object) -> str:
    """A short name for a source, used in messages and reports."""
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, pd.DataFrame):
        return f"DataFrame[{len(source)} rows]"
    if isinstance(source, pa.Table | pa.RecordBatch):
        return f"{type(source).__name__}[{source.num_rows} rows]"
    return type(source).__name__


def iter_batches(
    source: DataSource, *, batch_rows: int = BATCH_ROWS
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The Arrow schema of ``source`` and an iterator over its record batches.

    The schema comes first so that a source with no rows still tells which
    columns (and types) it has.

    Raises:
        NotFound: the path does not exist.
        UserInputError: the file is empty, of an unknown format or unreadable.
    """
    if isinstance(source, pd.DataFrame):
        return _from_dataframe(source, batch_rows)
    if isinstance(source, pa.Table):
        return source.schema, iter(source.to_batches(max_chunksize=batch_rows))
    if isinstance(source, pa.RecordBatch):
        return source.schema, iter([source])
    if isinstance(source, pa.RecordBatchReader):
        return source.schema, iter(source)
    if isinstance(source, str | Path):
        return _from_path(Path(source), batch_rows)
    raise UserInputError(
        f"Cannot read data from a {type(source).__name__}; give a parquet or CSV path, "
        "a pandas DataFrame or an Arrow table."
    )


def iter_column_batches(
    source: DataSource, *, batch_rows: int = BATCH_ROWS
) -> tuple[pa.Schema, Iterator[tuple[int, pa.RecordBatch]]]:
    """Like :func:`iter_batches`, as ``(first column index, batch of some columns)``.

    A parquet file or folder is read one column at a time (each column a pass
    over the file), so memory holds one column of one row group; other sources
    yield their batches with every column (index 0).
    """
    if isinstance(source, str | Path):
        path = Path(source)
        is_parquet = path.is_dir() or any(s.lower() in (".parquet", ".pq") for s in path.suffixes)
        if path.exists() and is_parquet:
            schema, _ = iter_batches(path, batch_rows=batch_rows)

            def columns() -> Iterator[tuple[int, pa.RecordBatch]]:
                for index, name in enumerate(schema.names):
                    _, batches = _from_path(path, batch_rows, columns=[name])
                    for batch in batches:
                        yield index, batch

            return schema, columns()
    schema, batches = iter_batches(source, batch_rows=batch_rows)
    return schema, ((0, batch) for batch in batches)


def read_table(source: DataSource) -> pa.Table:
    """The whole source as one Arrow table (for small data and tests)."""
    schema, batches = iter_batches(source)
    return pa.Table.from_batches(list(batches), schema=schema)


def _from_dataframe(
    df: pd.DataFrame, batch_rows: int
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if not all(isinstance(c, str) for c in df.columns):
        df = df.rename(columns=str)
    if df.columns.duplicated().any():
        dupes = sorted(set(df.columns[df.columns.duplicated()]))
        raise UserInputError(f"The DataFrame has duplicate column names {dupes}; rename them.")
    try:
        # Table (not RecordBatch) because pandas' Arrow-backed columns arrive chunked.
        first = pa.Table.from_pandas(df.iloc[:batch_rows], preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UserInputError(
            f"A column of the DataFrame mixes types Arrow cannot hold together ({exc}); "
            "cast it to one type first."
        ) from exc
    schema = first.schema.remove_metadata()

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first.replace_schema_metadata(None).to_batches()
        for start in range(batch_rows, len(df), batch_rows):
            part = pa.Table.from_pandas(
                df.iloc[start : start + batch_rows], schema=schema, preserve_index=False
            )
            yield from part.replace_schema_metadata(None).to_batches()

    return schema, batches()


def _from_path(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    require_path(path)
    if path.is_dir():
        return _from_parquet_dataset(path, batch_rows, columns)
    if path.stat().st_size == 0:
        raise UserInputError(f"{path} is empty (0 bytes); there is no data to describe.")
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return _from_parquet(path, batch_rows, columns)
    if ".csv" in suffixes or ".tsv" in suffixes or ".txt" in suffixes:
        return _from_csv(path, batch_rows)
    raise UserInputError(
        f"Don't know how to read {path.name}: use a .parquet or .csv file "
        "(or a folder of parquet files)."
    )


def _from_parquet(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserInputError(f"{path} is not a readable parquet file: {exc}") from exc
    schema = _without_pandas_index(pf.schema_arrow)
    return schema, pf.iter_batches(batch_size=batch_rows, columns=columns or schema.names)


def _from_parquet_dataset(
    path: Path, batch_rows: int, columns: list[str] | None = None
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    import pyarrow.dataset as pads

    try:
        dataset = pads.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserInputError(f"{path} is not a folder of parquet files: {exc}") from exc
    schema = _without_pandas_index(dataset.schema)
    return schema, dataset.to_batches(batch_size=batch_rows, columns=columns or schema.names)


def _without_pandas_index(schema: pa.Schema) -> pa.Schema:
    """Drop the ``__index_level_N__`` columns pandas writes for a non-default index."""
    fields = [f for f in schema if not f.name.startswith("__index_level_")]
    return pa.schema(fields)


def _from_csv(path: Path, batch_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    import pyarrow.csv as pcsv

    schema, dialect = _sniff_csv(path)
    read = pcsv.ReadOptions(
        column_names=schema.names,
        skip_rows=int(dialect["skip_rows"]) + (1 if dialect["header"] else 0),
        block_size=CSV_BLOCK_BYTES,
    )
    parse = pcsv.ParseOptions(
        delimiter=dialect["delimiter"],
        quote_char=dialect["quote"],
        escape_char=(
            dialect["escape"]
            if dialect["escape"] and dialect["escape"] != dialect["quote"]
            else False
        ),
        double_quote=dialect["escape"] in ("", dialect["quote"]),
        newlines_in_values=True,
    )
    convert = pcsv.ConvertOptions(
        column_types=schema,
        null_values=_CSV_NULLS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        reader = pcsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserInputError(f"{path} is not a readable CSV file: {exc}") from exc

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                yield from pa.Table.from_batches([batch]).to_batches(max_chunksize=batch_rows)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserInputError(
                f"Could not read {path} as CSV: {exc} (the column types were guessed from "
                "its first rows; a later row does not fit them)."
            ) from exc

    return schema, batches()


class _Dialect(TypedDict):
    """How a CSV file is written, as DuckDB's sniffer found it."""

    delimiter: str
    quote: str
    escape: str
    header: bool
    skip_rows: int


def _sniff_csv(path: Path) -> tuple[pa.Schema, _Dialect]:
    """Column types (as Arrow) and dialect of a CSV file, from DuckDB's sniffer."""
    import duckdb

    # DuckDB's default 32 MB buffers per thread made sniffing a large file cost ~60 MB.
    con = duckdb.connect(config={"threads": 1})
    try:
        relation = con.sql(
            "SELECT * FROM read_csv($path, nullstr=$nulls, buffer_size=$buffer)",
            params={"path": str(path), "nulls": _CSV_NULLS, "buffer": _SNIFF_BUFFER},
        )
        schema = relation.limit(0).to_arrow_table().schema
        row = con.execute(
            "SELECT Delimiter, Quote, Escape, HasHeader, SkipRows "
            "FROM sniff_csv($path, buffer_size=$buffer)",
            {"path": str(path), "buffer": _SNIFF_BUFFER},
        ).fetchone()
    except duckdb.Error as exc:
        raise UserInputError(f"{path} is not a readable CSV file: {exc}") from exc
    finally:
        con.close()
    assert row is not None
    delimiter, quote, escape, header, skip = row

    def char(value: str | None) -> str:
        # DuckDB writes "(empty)" when the sample had none; one character or nothing.
        return value if value and len(value) == 1 and value != "\0" else ""

    dialect: _Dialect = {
        "delimiter": char(delimiter) or ",",
        "quote": char(quote) or '"',  # none in the sample: standard quoting if one comes
        "escape": char(escape),
        "header": bool(header),
        "skip_rows": int(skip or 0),
    }
    return schema.remove_metadata(), dialect
