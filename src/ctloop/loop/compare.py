"""Compare two replays of one loop: is a change to the pipeline or the declaration worse?

``ctloop loop replay NAME --json > base.json`` before a change and ``new.json``
after it; :func:`compare_replays` lines their spans up and reports, per span,
the live metric, the promotion and the triggers that fired on each side, then
the mean live metric over the spans both scored with a paired t interval of
the change (signed so that positive is better, whatever the metric's
direction). The change regresses when the mean change is below
``-max_regression``; the spans worse by more than that are named. Two
replays of different loops or metrics are not comparable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ctloop.core.errors import UserInputError

__all__ = ["Comparison", "SpanComparison", "compare_replays", "read_replay", "replay_at"]


@dataclass(frozen=True)
class SpanComparison:
    """One span on both sides."""

    span: str
    base_live: float | None
    new_live: float | None
    change: float | None  # new - base, signed so that positive is better
    base_promoted: int | None
    new_promoted: int | None
    base_fired: tuple[str, ...]
    new_fired: tuple[str, ...]
    base_status: str
    new_status: str
    worse: bool


@dataclass(frozen=True)
class Comparison:
    """The per-span table and the verdict."""

    loop: str
    metric: str
    higher_is_better: bool
    spans: tuple[SpanComparison, ...]
    paired: int  # spans with a live metric on both sides
    base_mean: float | None
    new_mean: float | None
    mean_change: float | None
    interval: tuple[float, float] | None  # paired t interval of the mean change
    confidence: float
    max_regression: float
    regressed: bool
    worse_spans: tuple[str, ...]
    base_promotions: int
    new_promotions: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def verdict(self) -> str:
        """One line: what changed and whether it is a regression."""
        if self.mean_change is None:
            return "no span was scored on both sides: nothing to compare"
        ci = (f", {self.confidence:.0%} CI [{self.interval[0]:+.4f}, {self.interval[1]:+.4f}]"
              if self.interval else "")
        head = (f"mean live {self.metric}: base {self.base_mean:.4f}, new {self.new_mean:.4f} "
                f"(change {self.mean_change:+.4f}{ci}) over {self.paired} spans; promotions "
                f"{self.base_promotions} -> {self.new_promotions}")
        if self.regressed:
            worse = ", ".join(self.worse_spans) or "none beyond the tolerance alone"
            return (f"{head}. WORSE beyond --max-regression {self.max_regression:g}; worse "
                    f"spans: {worse}")
        return f"{head}. Not worse beyond --max-regression {self.max_regression:g}."


def read_replay(path: str | Path) -> dict[str, Any]:
    """A replay written by ``ctloop loop replay NAME --json``; anything else is one line."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"No replay at {path}; write one with "
                             "`ctloop loop replay NAME --json > FILE`.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is not a replay's JSON ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("spans"), list) or not all(
            k in data for k in ("loop", "metric")):
        raise UserInputError(f"{path} is not the JSON of `ctloop loop replay NAME --json` "
                             "(it needs loop, metric and spans).")
    return data


def _live(span: Mapping[str, Any], metric: str) -> float | None:
    value = (span.get("live") or {}).get(metric)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _fired(span: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(t.get("name")) for t in span.get("triggers") or [] if t.get("fired"))


def _interval(changes: list[float], confidence: float) -> tuple[float, float] | None:
    n = len(changes)
    if n < 2:
        return None
    from scipy import stats

    mean = sum(changes) / n
    sd = math.sqrt(sum((c - mean) ** 2 for c in changes) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _check_comparable(base: Mapping[str, Any], new: Mapping[str, Any],
                      max_regression: float) -> None:
    """Refuse a negative tolerance and replays of different loops or metrics."""
    if max_regression < 0:
        raise UserInputError(f"--max-regression must be >= 0. Got {max_regression:g}.")
    if base.get("loop") != new.get("loop") or base.get("metric") != new.get("metric"):
        raise UserInputError(
            f"These replays are of different loops (base: loop {base.get('loop')!r}, metric "
            f"{base.get('metric')!r}; new: loop {new.get('loop')!r}, metric "
            f"{new.get('metric')!r}); compare two replays of one loop."
        )


def _span_names(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The base's spans in its order, then the spans only the new replay has."""
    names = [str(s.get("span")) for s in base["spans"]]
    seen = set(names)
    later = dict.fromkeys(str(s.get("span")) for s in new["spans"])
    return names + [n for n in later if n not in seen]


def _compare_span(name: str, b: Mapping[str, Any], n: Mapping[str, Any], metric: str,
                  sign: float, max_regression: float) -> SpanComparison:
    """One span on both sides (an empty mapping where a side lacks it)."""
    bl, nl = _live(b, metric), _live(n, metric)
    change = None if bl is None or nl is None else sign * (nl - bl)
    return SpanComparison(
        span=name, base_live=bl, new_live=nl, change=change,
        base_promoted=b.get("promoted"), new_promoted=n.get("promoted"),
        base_fired=_fired(b), new_fired=_fired(n),
        base_status=str(b.get("status", "missing")),
        new_status=str(n.get("status", "missing")),
        worse=change is not None and change < -max_regression - 1e-12,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare_replays(
    base: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    max_regression: float = 0.0,
    confidence: float = 0.95,
) -> Comparison:
    """Line up two replays of the same loop span by span and judge the change."""
    from ctloop.models.metrics import HIGHER_IS_BETTER

    _check_comparable(base, new, max_regression)
    metric = str(base["metric"])
    higher = HIGHER_IS_BETTER.get(metric, True)
    sign = 1.0 if higher else -1.0
    by_base = {str(s.get("span")): s for s in base["spans"]}
    by_new = {str(s.get("span")): s for s in new["spans"]}
    rows = [_compare_span(name, by_base.get(name, {}), by_new.get(name, {}), metric, sign,
                          max_regression) for name in _span_names(base, new)]
    scored = [r for r in rows if r.change is not None]
    changes = [float(r.change or 0) for r in scored]
    mean_change = _mean(changes)
    return Comparison(
        loop=str(base["loop"]), metric=metric, higher_is_better=higher, spans=tuple(rows),
        paired=len(scored),
        base_mean=_mean([float(r.base_live or 0) for r in scored]),
        new_mean=_mean([float(r.new_live or 0) for r in scored]),
        mean_change=mean_change, interval=_interval(changes, confidence),
        confidence=confidence, max_regression=max_regression,
        regressed=mean_change is not None and mean_change < -max_regression - 1e-12,
        worse_spans=tuple(r.span for r in rows if r.worse),
        base_promotions=sum(1 for r in rows if r.base_promoted),
        new_promotions=sum(1 for r in rows if r.new_promoted),
    )


def _data_folder(data_glob: str, root: Path) -> Path | None:
    """The folder a file-glob ``data`` reads from, relative to ``root`` (None elsewhere)."""
    parts = Path(data_glob).parts
    head = [p for p in parts[:next((i for i, p in enumerate(parts) if any(
        c in p for c in "*?[")), len(parts))]]
    folder = Path(*head) if head else None
    if folder is None or not folder.is_absolute():
        folder = root / (folder or "")
    try:
        relative = folder.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return relative if relative.parts else None


def replay_at(ref: str, name: str, root: Path, *, data_glob: str | None = None,
              timeout_s: float = 3600.0) -> dict[str, Any]:
    """The replay of loop ``name`` as declared at git ``ref`` (its ctloop.toml, trainer and
    pipeline code), on today's data, with this ctloop.

    The tree at ``ref`` is written to a temporary folder (``git archive``: the working
    tree and its checkout are left alone); the folder today's declaration reads its
    spans from replaces the one at ``ref``, so only the code and the declaration differ.
    """
    import io
    import os
    import shutil
    import subprocess
    import sys
    import tarfile
    import tempfile

    root = root.resolve()

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              check=False)

    top = git("rev-parse", "--show-toplevel")
    archive = git("archive", "--format=tar", ref) if top.returncode == 0 else top
    if archive.returncode != 0:
        why = (archive.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise UserInputError(f"Cannot read the git ref {ref!r} in {root}: {why}")
    with tempfile.TemporaryDirectory(prefix="ctloop-replay-at-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python before 3.11.4: git archive holds plain files
                tar.extractall(tmp)
        sub = root.relative_to(Path(top.stdout.decode().strip()).resolve())
        project = Path(tmp) / sub
        if not (project / "ctloop.toml").is_file():
            raise UserInputError(f"The tree at {ref!r} has no {sub / 'ctloop.toml'}; "
                                 "compare against a commit that declares the loop.")
        data = _data_folder(data_glob, root) if data_glob else None
        if data is not None and (root / data).exists():
            shutil.rmtree(project / data, ignore_errors=True)
            (project / data).parent.mkdir(parents=True, exist_ok=True)
            (project / data).symlink_to(root / data, target_is_directory=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                            "CTLOOP_ONLINE_STORE_URL")}
        done = subprocess.run([sys.executable, "-m", "ctloop", "loop", "replay", name, "--json"],
                              cwd=project, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        if done.returncode != 0 or not done.stdout.strip():
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserInputError(f"The replay of loop {name!r} at {ref!r} failed: {why}")
        replay: dict[str, Any] = json.loads(done.stdout)
        return replay
