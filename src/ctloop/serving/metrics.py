"""Prometheus metrics of the prediction service, per model version, route and endpoint.

Label values are bounded: a model name that is not served is counted as
``_unknown``, statuses are HTTP codes, endpoints and protocols a fixed set,
versions and routes those actually loaded. With ``--workers N`` the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ctloop.requestlog.writer import WriterStats

__all__ = ["CONTENT_TYPE", "UNKNOWN", "ServingMetrics", "multiprocess"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "_unknown"

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess() -> bool:
    """Whether metrics are shared across worker processes (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServingMetrics:
    """Request and row counters, latency histogram, loaded versions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ctloop_requests",
            "Requests by model, endpoint, protocol and HTTP status.",
            ["model", "endpoint", "protocol", "status"],
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
            "Server-side latency of prediction requests, by model version, route and endpoint.",
            ["model", "version", "route", "endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "ctloop_batch_rows",
            "Rows per coalesced predict call (micro-batching).",
            ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=self.registry,
        )
        self.denied = Counter(
            "ctloop_denied_requests",
            "Requests refused for their API key (401 none or invalid, 403 too weak), by "
            "status; every one is counted, only a bounded sample is written to the log.",
            ["status"],
            registry=self.registry,
        )
        self.loaded = Gauge(
            "ctloop_model_version_loaded",
            "Version answering on each route.",
            ["model", "route"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        # Children by label values: ``labels()`` takes a lock and builds a key on every call,
        # three times per request; the label sets are bounded (see above), so is this.
        self._requests: dict[tuple[str, str, str, int], Counter] = {}
        self._rows: dict[tuple[str, int, str, str], Counter] = {}
        self._latency: dict[tuple[str, str, str, str], Histogram] = {}

    def count_request(self, model: str, endpoint: str, protocol: str, status: int) -> None:
        """One request answered with ``status``."""
        key = (model, endpoint, protocol, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(model, endpoint, protocol,
                                                               str(status))
        child.inc()

    def count_rows(self, model: str, version: int, route: str, status: str, rows: int) -> None:
        """``rows`` rows scored by ``model:version`` on ``route``."""
        key = (model, version, route, status)
        child = self._rows.get(key)
        if child is None:
            child = self._rows[key] = self.rows.labels(model, str(version), route, status)
        child.inc(rows)

    def observe_latency(self, model: str, version: str, route: str, endpoint: str,
                        seconds: float) -> None:
        """A prediction request's server-side latency."""
        key = (model, version, route, endpoint)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.latency.labels(model, version, route, endpoint)
        child.observe(seconds)

    def watch_log(self, stats: Callable[[], WriterStats]) -> None:
        """Export the request log writer's counters, read at each scrape (this process)."""
        self.registry.register(_LogCollector(stats))

    def render(self) -> bytes:
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class _LogCollector(Collector):
    """``ctloop_request_log_rows{outcome}`` and the writer's pending rows and failure state."""

    def __init__(self, stats: Callable[[], WriterStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.stats()
        rows = CounterMetricFamily(
            "ctloop_request_log_rows",
            "Request log rows by outcome: written (spooled), quarantined (could not be "
            "written, kept with the reason), unlogged (answered without a log row, "
            "log_failure = serve), dropped (rows of refused requests not kept while the log "
            "was failing or full), lost (acknowledged, given up at shutdown on a failing disk).",
            labels=["outcome"])
        for outcome, value in (("written", s.written_rows), ("quarantined", s.quarantined_rows),
                               ("unlogged", s.unlogged_rows), ("dropped", s.dropped_rows),
                               ("lost", s.lost_rows)):
            rows.add_metric([outcome], value)
        yield rows
        yield CounterMetricFamily(
            "ctloop_request_log_refused_requests",
            "Requests answered 503 because the request log could not make them durable.",
            value=s.refused_requests)
        yield GaugeMetricFamily(
            "ctloop_request_log_pending_rows",
            "Acknowledged rows held in memory, not yet in the write-ahead spool.",
            value=s.pending_rows)
        yield GaugeMetricFamily(
            "ctloop_request_log_failing",
            "1 while the request log's spool cannot be written (disk full, I/O error).",
            value=1 if s.failing else 0)
