"""The churn loop the tests declare: one home for its TOML table.

The sample spans (``ctloop.loop.sample.write_sample_spans``) have the columns this table
names; tests add the lines their scenario needs (window, triggers, trainer, ...).
"""

from __future__ import annotations

__all__ = ["churn_loop"]


def churn_loop(*lines: str, data: str = "landing/*.parquet") -> str:
    """``[ctloop.loops.churn]`` over the sample spans, followed by ``lines``."""
    head = ["[ctloop.loops.churn]", 'model = "churn"', f'data = "{data}"', 'event_time = "ts"',
            'label = "churned"']
    return "\n" + "\n".join([*head, *lines]) + "\n"
