"""Old home of the request log's writer, kept for one merge: use ``ctloop.requestlog``."""

from ctloop.requestlog.batches import LogBatch, batch_table, batches_table, rejected_batch
from ctloop.requestlog.writer import RequestLogger

__all__ = ["LogBatch", "RequestLogger", "batch_table", "batches_table", "rejected_batch"]
