"""The load generator moved into the package (:mod:`ctloop.models.loadgen`); kept for benches."""

from ctloop.models.loadgen import Result, load, request_bytes

__all__ = ["Result", "load", "request_bytes"]
