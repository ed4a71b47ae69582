"""Prometheus metrics of one app (own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    """Request and row counters, latency histogram, loaded versions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ctloop_requests",
            "Prediction requests by model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.rows = Counter(
            "ctloop_predictions",
            "Rows scored, by model, version, route and status.",
            ["model", "version", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ctloop_request_latency_seconds",
            "Prediction request latency (server side).",
            ["model"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.loaded = Gauge(
            "ctloop_model_version_loaded",
            "Version answering on each route.",
            ["model", "route"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
