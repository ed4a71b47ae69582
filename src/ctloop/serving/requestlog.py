"""Old home of the request log's writer, kept for one merge: use ``ctloop.requestlog``."""

from ctloop.requestlog.writer import (
    LogBatch,
    RequestLogger,
    batch_table,
    batches_table,
    rejected_batch,
)

__all__ = ["LogBatch", "RequestLogger", "batch_table", "batches_table", "rejected_batch"]
