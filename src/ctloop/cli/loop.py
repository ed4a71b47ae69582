"""``ctloop loop replay|run|status``: declared continuous-training loops."""

from __future__ import annotations

import html
import json
import signal
import textwrap
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ctloop.cli.output import console, err_console, escape, print_json, print_table
from ctloop.core.errors import UserInputError
from ctloop.core.paths import require_writable
from ctloop.core.settings import load_settings

app = typer.Typer(no_args_is_help=True)


class _Progress:
    """The span and its phase on stderr while a replay or a tick works (never silent): a
    status line on a terminal; with ``lines`` (a long-running controller whose stderr is a
    log), one timestamped line per phase."""

    def __init__(self, enabled: bool, *, lines: bool = False) -> None:
        self.enabled = enabled
        self.lines = lines and not enabled
        self.status: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.status = err_console.status("starting")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def phase(self, span: str, phase: str) -> None:
        if self.status is not None:
            self.status.update(f"span [bold]{span}[/]: {phase}")
        elif self.lines:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            typer.echo(f"{stamp} span {span}: {phase}", err=True)



def _cut(text: str, width: int) -> str:
    """``text`` shortened at a word boundary with an ellipsis (never mid-word)."""
    return textwrap.shorten(text, width, placeholder=" …") if len(text) > width else text

def _version(version: int | None, none: str = "none") -> str:
    """``v3``, or what stands for no version (never ``vNone``)."""
    return none if version is None else f"v{version}"


def _span_line(report: Any, metric: str) -> str:
    """One line per span: quarantined, a bootstrap, or what served, fired and was decided."""
    if report.status != "valid":
        serving = (f"champion v{report.served_version} keeps serving"
                   if report.served_version is not None else "no champion yet")
        return (f"[bold]{report.span}[/] [red]quarantined[/] ({len(report.anomalies)} "
                f"anomalies); {serving}")
    if report.bootstrap:
        return _bootstrap_line(report)
    live = (report.live or {}).get(metric)
    fired = [t["name"] for t in report.triggers if t["fired"]]
    never = (report.baseline or {}).get(metric)
    drift = (report.drift or {}).get("share")
    text = (f"[bold]{report.span}[/] {_version(report.served_version)} live {metric} "
            + (f"{live}" if live is not None else
               f"n/a ({(report.live or {}).get('n', 0)} labelled)")
            + (f" (never retrained {never})" if report.baseline else "")
            + f"; drift {drift if drift is not None else 'n/a (nothing served)'}"
            f"; fired: {', '.join(fired) or 'none'}")
    if report.waiting:
        text += f"; [yellow]no candidate[/]: {escape(_cut(report.waiting, 120))}"
    text += _gate_text(report.gate)
    if report.promoted:
        text += f"; [green]promoted v{report.promoted}[/]"
    return text


def _bootstrap_line(report: Any) -> str:
    if report.waiting:
        return (f"[bold]{report.span}[/] bootstrap [yellow]waits[/]: "
                f"{escape(_cut(report.waiting, 160))}")
    if report.promoted is None:
        failed = (report.gate or {}).get("error") or "no candidate was promoted"
        return f"[bold]{report.span}[/] bootstrap: [red]no champion[/]: {escape(_cut(failed, 160))}"
    return f"[bold]{report.span}[/] bootstrap: v{report.promoted} is the first champion"


def _gate_text(gate: Any) -> str:
    """The gate's decision on the span's candidate, if one was trained."""
    if not gate:
        return ""
    text = f"; {escape(gate['note'])}" if gate.get("note") else ""
    if gate.get("error"):
        return text + f"; [red]training failed[/]: {escape(_cut(gate['error'], 120))}"
    verdict = "[green]blessed[/]" if gate.get("blessed") else "[yellow]refused[/]"
    return text + (f"; candidate {gate.get('candidate')} vs champion {gate.get('champion')}: "
                   f"{verdict}")


def _benefit(reports: list[Any], metric: str) -> str:
    """What retraining bought: the served metric against the never-retrained model's,
    averaged over the spans where both were measured."""
    pairs = [(r.live[metric], r.baseline[metric]) for r in reports
             if r.live and r.baseline and r.live.get(metric) is not None
             and r.baseline.get(metric) is not None]
    if not pairs:
        return "retraining: no span was scored by both the served and the first model"
    live = sum(a for a, _ in pairs) / len(pairs)
    never = sum(b for _, b in pairs) / len(pairs)
    return (f"retraining: mean live {metric} {live:.4f} vs never retrained {never:.4f} "
            f"({live - never:+.4f}) over {len(pairs)} spans")


@app.command("replay")
def replay_cmd(
    name: Annotated[str, typer.Argument(help="the loop ([ctloop.loops.NAME] in ctloop.toml)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the replay as JSON")] = False,
    html_path: Annotated[Path | None, typer.Option("--html", help="write an HTML report")]
    = None,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="also score the never-retrained first champion on every span")]
    = False,
    against: Annotated[str | None, typer.Option(
        "--against", help="also replay the declaration and code at this git ref and compare "
        "(exit 1 when this one is worse beyond --max-regression)")] = None,
    max_regression: Annotated[float, typer.Option(
        "--max-regression", help="with --against: how much worse the mean live metric may get")]
    = 0.0,
) -> None:
    """Backtest the loop on its history: every span in event-time order, in a sandbox."""
    from ctloop.loop import get_loop

    settings = load_settings()
    spec = get_loop(name, settings)  # a wrong name or path answers before the heavy imports
    from ctloop.loop.replay import replay
    base = None
    if against is not None:  # CI: judge this tree's loop against the one at a git ref,
        from ctloop.core.settings import find_project_root  # replayed first: a bad ref
        from ctloop.loop.compare import replay_at  # fails before any work

        base = replay_at(against, name, find_project_root(),
                         data_glob=spec.data if isinstance(spec.data, str) else None)
    with _Progress(err_console.is_terminal) as progress:
        def on_span(report: Any) -> None:
            if not as_json and against is None:
                console.print(_span_line(report, _metric(report, spec.metric)),
                              highlight=False)

        result = replay(spec, settings, baseline=baseline, on_phase=progress.phase,
                        on_span=on_span)
    if html_path is not None:
        write_html(html_path, result.to_json())
    compared = None
    if base is not None:
        from ctloop.loop.compare import compare_replays

        compared = compare_replays(base, result.to_json(), max_regression=max_regression)
        _print_comparison(compared, as_json)
    elif as_json:
        print_json(result.to_json())
    else:
        if baseline:
            console.print(_benefit(result.spans, result.metric), highlight=False)
        console.print(f"sandbox: {result.home} (metadata, registry, prediction log)",
                      highlight=False, soft_wrap=True)
        for line in replay_next_lines(name):
            console.print(line, highlight=False, soft_wrap=True)
    for error in result.errors:
        typer.echo(error, err=True)  # one line, never wrapped
    if result.errors or (compared is not None and compared.regressed):
        raise typer.Exit(1)


def _metric(report: Any, default: str) -> str:
    """The metric a span was judged on (the task may have chosen it: rmse for a number)."""
    keys = [k for k in (report.live or report.baseline or {}) if k not in ("version", "n")]
    return keys[0] if keys else default


def replay_next_lines(name: str) -> list[str]:
    """The exact commands that look into a replay's sandbox."""
    return ["look into it:",
            f"  ctloop loop status {name} --replay",
            f"  ctloop runs list --replay {name}",
            f"  ctloop models list --replay {name}",
            f"  ctloop ui --replay {name}"]


@app.command("run")
def run_cmd(
    name: Annotated[str, typer.Argument(help="the loop ([ctloop.loops.NAME] in ctloop.toml)")],
    once: Annotated[bool, typer.Option("--once", help="handle what landed, then exit")]
    = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between ticks")] = 30.0,
    lease_ttl: Annotated[float, typer.Option(
        min=1.0, help="seconds a dead controller's lease blocks others")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="with --once: print the spans")]
    = False,
) -> None:
    """The live controller: validate landed spans, watch the log, retrain, gate, canary.

    Safe to start twice (one lease holder acts); SIGTERM or Ctrl-C stops it after the
    span in hand.
    """
    from ctloop.loop import get_loop

    settings = load_settings()
    spec = get_loop(name, settings)  # a wrong name or path answers before the heavy imports
    require_writable(settings.home, "state folder")
    from ctloop.loop.controller import LoopController

    with _Progress(err_console.is_terminal and not as_json, lines=not once) as progress:
        controller = LoopController(spec, settings, lease_ttl=lease_ttl,
                                    on_phase=progress.phase)
        try:
            if once:
                result = controller.tick()
                if result.blocked_by and not as_json:
                    # One pass that could not act is a failure for cron/CI, not a success.
                    raise UserInputError(
                        f"Loop {name!r}: the lease is held by {_holder(result.blocked_by)}; "
                        "nothing was done. Run again once it releases the lease (or its "
                        "lease expires).")
                _say_tick(result, spec.metric, as_json)
                if result.errors or result.blocked_by:
                    raise typer.Exit(1)
                return
            stop = _stop_on_signals(name)
            console.print(f"loop {name}: watching {spec.data} every {interval:g}s "
                          "(SIGTERM/Ctrl-C stops)", highlight=False)
            controller.run(interval=interval, stop=stop,
                           on_tick=lambda r: _say_tick(r, spec.metric, False))
            console.print(f"loop {name}: stopped", highlight=False)
        finally:
            controller.close()


def _holder(holder: str) -> str:
    """Who holds the lease: a live controller (this host's, or another host's until its
    lease runs out) or a process that is gone, with the holder id and what is known."""
    from ctloop.core.processes import Liveness
    from ctloop.triggers.store import describe_holder, holder_liveness

    gone = holder_liveness(holder) is Liveness.DEAD
    return (f"{'a process that is gone' if gone else 'a live controller'} ({holder}): "
            f"{describe_holder(holder)}")


def _stop_on_signals(name: str) -> threading.Event:
    """SIGTERM or Ctrl-C: finish the span in hand, release the lease, exit 0. A second one
    aborts at once (a training run left behind is resumed by the next controller)."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo(f"loop {name}: {signal.Signals(signum).name}: stopping after the span in "
                   "hand (again to abort)", err=True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    return stop


def _say_tick(result: Any, metric: str, as_json: bool) -> None:
    """The tick's spans on stdout (JSON or one line each); its errors, one line each, on
    stderr either way, so cron mails them while the JSON stays clean."""
    if as_json:
        print_json({"spans": [r.to_json() for r in result.reports],
                    "blocked_by": result.blocked_by, "errors": result.errors})
    else:
        if result.blocked_by:
            console.print(f"the lease is held by {_holder(result.blocked_by)}; nothing done",
                          highlight=False)
        for report in result.reports:
            console.print(_span_line(report, _metric(report, metric)), highlight=False)
    for error in result.errors:
        typer.echo(error, err=True)  # one line, never wrapped


@app.command("status")
def status_cmd(
    name: Annotated[str, typer.Argument(help="the loop ([ctloop.loops.NAME] in ctloop.toml)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    replay: Annotated[bool, typer.Option(
        "--replay", help="read the sandbox of the last `ctloop loop replay NAME`")] = False,
) -> None:
    """Spans (valid / quarantined), champion and challenger, last signals, and why each
    trigger did or did not fire."""
    from ctloop.loop.sandbox import replay_home, replay_settings

    settings = load_settings()
    spec = _declared_or_remembered(name, settings)
    from ctloop.loop.status import loop_status
    target = replay_settings(settings, name) if replay else settings
    status = loop_status(spec, target, name=name, replay=replay)
    sandbox = replay_home(settings, name)
    note = None
    if not status["spans"]:
        where = "the replay's sandbox" if replay else f"{settings.home}"
        note = f"no spans handled yet in {where}"
        if not replay and (sandbox / "metadata.db").is_file():
            note += (f"; the last replay is in {sandbox}: "
                     f"ctloop loop status {name} --replay")
        elif not replay:
            note += f"; run `ctloop loop run {name}` or `ctloop loop replay {name}`"
    if as_json:
        print_json({**status, "note": note})
        return
    console.print(f"loop [bold]{name}[/]"
                  + (" (replay sandbox)" if replay else "")
                  + f": model {status['model'] or '?'}, champion "
                  f"{_version(status['champion'], 'none yet')}, challenger "
                  f"{_version(status['challenger'])}"
                  + (f", lease held by {status['lease']['holder']}" if status["lease"] else ""),
                  highlight=False)
    if note:
        console.print(note, highlight=False, soft_wrap=True)
        return
    print_table("spans", ["span", "status", "served", "promoted", "anomalies"],
                [[s["span"], s["status"], s["served_version"], s["promoted"],
                  _cut("; ".join(s["anomalies"] or ([s["waiting"]] if s["waiting"] else [])), 80)]
                 for s in status["spans"]])
    print_table("triggers", ["trigger", "last span", "fired", "why"],
                [[t["name"], t.get("span"), t.get("fired"), t.get("reason")]
                 for t in status["triggers"]])


def _declared_or_remembered(name: str, settings: Any) -> Any:
    """The declared loop ``name``; else ``None`` when a memory of it exists (a loop
    declared in Python, as the demo's), live or replayed; else the declaration's error."""
    from ctloop.core.errors import NotFound
    from ctloop.core.paths import empty_sqlite_store
    from ctloop.loop import get_loop
    from ctloop.loop.sandbox import replay_home

    try:
        return get_loop(name, settings)
    except NotFound:
        if (replay_home(settings, name) / "metadata.db").is_file():
            return None
        if empty_sqlite_store(settings.metadata_url) is not None:
            raise  # nothing stored: no memory to read (and no database driver to load)
        from ctloop.loop.status import read_memory

        if read_memory(settings, name).spans:
            return None
        raise


def write_html(path: Path, data: dict[str, Any]) -> None:
    """A self-contained page: one row per span with what the loop saw and decided."""
    metric = data["metric"]
    rows = []
    for s in data["spans"]:
        fired = ", ".join(t["name"] for t in s["triggers"] if t["fired"]) or "-"
        gate = s.get("gate") or {}
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in [
            s["span"], s["rows"], s["status"], s["served_version"],
            (s.get("live") or {}).get(metric), (s.get("baseline") or {}).get(metric),
            (s.get("drift") or {}).get("share"), fired,
            gate.get("error") or ("blessed" if gate.get("blessed") else
                                  "refused" if gate else
                                  f"waits: {s['waiting']}" if s.get("waiting") else "-"),
            s["promoted"], "; ".join(s["anomalies"])]) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in [
        "span", "rows", "status", "served", f"live {metric}", f"never retrained {metric}",
        "drift share", "fired", "gate", "promoted", "anomalies"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><meta charset=utf-8><title>loop {html.escape(data['loop'])}</title>"
        "<style>body{font:14px system-ui;margin:2em}td,th{padding:4px 8px;border-bottom:"
        "1px solid #ddd;text-align:left}</style>"
        f"<h1>Replay of loop {html.escape(data['loop'])} (model "
        f"{html.escape(data['model'])})</h1><table><tr>{head}</tr>{''.join(rows)}</table>"
        f"<script type=application/json id=data>{html.escape(json.dumps(data))}</script>")


@app.command("compare")
def compare_cmd(
    base: Annotated[Path, typer.Argument(help="replay JSON before the change")],
    new: Annotated[Path, typer.Argument(help="replay JSON after the change")],
    max_regression: Annotated[float, typer.Option(
        "--max-regression", help="how much worse the mean live metric may get (exit 1 beyond)")]
    = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")]
    = False,
) -> None:
    """Two replays of one loop side by side; exit 1 when the new one is worse (CI gate)."""
    from ctloop.loop.compare import compare_replays, read_replay

    result = compare_replays(read_replay(base), read_replay(new), max_regression=max_regression)
    _print_comparison(result, as_json)
    if result.regressed:
        raise typer.Exit(1)


def _print_comparison(result: Any, as_json: bool) -> None:
    """A loop comparison as a per-span table and a verdict line, or JSON."""
    if as_json:
        print_json(result.to_json())
    else:
        def cell(value: float | None) -> str | None:
            return None if value is None else f"{value:.4f}"

        rows = [(s.span, cell(s.base_live), cell(s.new_live), cell(s.change),
                 s.base_promoted, s.new_promoted, ", ".join(s.base_fired) or "-",
                 ", ".join(s.new_fired) or "-", "WORSE" if s.worse else "")
                for s in result.spans]
        print_table(f"loop {result.loop}: live {result.metric}, base vs new",
                    ["span", "base", "new", "change", "promoted (base)", "promoted (new)",
                     "fired (base)", "fired (new)", ""], rows)
        console.print(result.verdict(), highlight=False, markup=False)
