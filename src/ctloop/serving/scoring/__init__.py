"""Scoring: the :class:`~ctloop.serving.scoring.predict.Scorer`, routing (canary, A/B,
shadow), micro-batching, the fast path past pandas, and online feature lookup."""
