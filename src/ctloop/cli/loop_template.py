"""The loop table the ``loop`` and ``ci`` templates of ``ctloop init`` write.

Both scaffold the same churn loop on generated weekly spans; they differ only in the
trainer and the signals, so one builder writes the table and neither template can drift
from the other (or from :func:`ctloop.loop.sample.write_sample_spans`'s columns).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["loop_toml"]


def loop_toml(loop: str, *, header: str, retrain_on: Sequence[str], train: str,
              drift_columns: Sequence[str] = (), window_note: str = "") -> str:
    """``[ctloop]`` and ``[ctloop.loops.LOOP]`` as TOML text, after the ``header`` comment.

    ``train`` is the TOML value of the ``train`` key (a ``"file.py:name"`` string or an
    inline table); ``window_note`` a comment on the ``window`` line.
    """
    window = 'window = "auto"' + (f"{' ' * 19}# {window_note}" if window_note else "")
    lines = [
        *(f"# {line}" for line in header.splitlines()),
        "[ctloop]",
        'runner = "local"',
        "",
        f"[ctloop.loops.{loop}]",
        f'model = "{loop}"',
        'data = "landing/*.parquet"        # each file that lands is one span',
        'event_time = "ts"',
        'label = "churned"',
        'id = "customer"',
        window,
        f"retrain_on = [{', '.join(_quoted(s) for s in retrain_on)}]",
        f"train = {train}",
        "decay = { max_drop = 0.1 }",
    ]
    if drift_columns:
        lines.append(f"drift = {{ columns = [{', '.join(_quoted(c) for c in drift_columns)}] }}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return f'"{text}"'
