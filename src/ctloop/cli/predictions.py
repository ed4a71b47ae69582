"""``ctloop predictions``: the prediction log's segments, compaction, retention and recovery."""

from __future__ import annotations

from typing import Annotated

import typer

from ctloop.cli.output import print_json, print_table
from ctloop.core.settings import load_settings

app = typer.Typer(no_args_is_help=True)

LogOpt = Annotated[str | None, typer.Option("--log", help="log URL (default: from the settings)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _open(log: str | None):  # type: ignore[no-untyped-def]
    from ctloop.requestlog.log import open_prediction_log

    return open_prediction_log(log, settings=load_settings())


@app.command("status")
def status(log: LogOpt = None, as_json: JsonOpt = False) -> None:
    """Segments per model: how many, rows, bytes, time range, and rows still spooled here.

    Rows the log could not write (quarantined, with the reason) are listed as
    kind ``quarantine``; read them with ``--json`` or DuckDB on the segment files.
    """
    plog = _open(log)
    try:
        recovered = plog.recover()
        rows = []
        for kind in ("predictions", "labels", "quarantine"):
            by_model: dict[str, list] = {}  # type: ignore[type-arg]
            for s in plog.segments(kind):
                by_model.setdefault(s.model_name or "-", []).append(s)
            for model, segs in sorted(by_model.items()):
                rows.append({
                    "kind": kind, "model": model, "segments": len(segs),
                    "rows": sum(s.rows for s in segs), "bytes": sum(s.bytes for s in segs),
                    "from": min((s.ts_min for s in segs if s.ts_min), default=None),
                    "to": max((s.ts_max for s in segs if s.ts_max), default=None),
                })
        quarantined = plog.quarantined()
        if as_json:
            print_json({"log": plog.url, "recovered_rows": recovered, "segments": rows,
                        "quarantined": quarantined})
            return
        print_table(f"prediction log {plog.url}", ["kind", "model", "segments", "rows", "bytes",
                                                   "from", "to"],
                    [[r[c] for c in ("kind", "model", "segments", "rows", "bytes", "from", "to")]
                     for r in rows])
        if recovered:
            typer.echo(f"published {recovered} rows a dead writer had spooled on this machine")
        for q in quarantined[-5:]:
            typer.echo(f"quarantined: {q['rows']} rows of {q['model_name']} "
                       f"v{q['model_version']}: {q['reason']}")
    finally:
        plog.close()


@app.command("compact")
def compact(
    log: LogOpt = None,
    target_rows: Annotated[int | None, typer.Option(min=1, help="rows per merged segment")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge small segments and apply the retention setting (safe while services write)."""
    plog = _open(log)
    try:
        expired = plog.expire()
        merged = plog.compact(target_rows=target_rows)
        left = len(plog.segments()) + len(plog.segments("labels"))
    finally:
        plog.close()
    if as_json:
        print_json({"merged_segments": merged, "expired_segments": expired,
                    "segments_left": left})
        return
    typer.echo(f"merged {merged} segments, expired {expired}; {left} segments left")
