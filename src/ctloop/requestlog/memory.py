"""Give the memory a publish freed back to the system (the writer process, glibc only).

A publish builds the Arrow tables and parquet file of up to a second of requests (tens
of MB under load) and frees them. glibc keeps what is freed: its threshold for mapping
large blocks on their own rises to the largest block freed, so the next publish's
buffers come from the heap, which fragments and never shrinks. Measured on the serving
bench (issue 21): the writer held ~127 MB after load, ~90 MB once trimmed. One call of
glibc's own through ctypes, ``malloc_trim``, at most once a second: the free pages left
in the arenas go back when there are enough of them to matter.

Not a fixed ``M_MMAP_THRESHOLD`` (every large buffer mapped and unmapped on its own):
it gave back the same memory, but every frame and publish then faulted its pages in
afresh: at 100 rows a request the writer took ~25 us more CPU per request and the
service ~10 % fewer requests a second (per-thread CPU, interleaved A/B, issue 21).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
from typing import Any

__all__ = ["keep_lean"]

_TRIM_ABOVE = 4 * 1024 * 1024  # free bytes in the arenas worth a trim


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):  # not glibc, or older than 2.33 (no mallinfo2)
        return None
    return libc


def keep_lean(interval: float = 1.0) -> bool:
    """Trim the heap every ``interval`` seconds when it holds more than a few MB freed (a
    daemon thread); False where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return False

    def trim() -> None:
        while True:
            time.sleep(interval)
            if libc.mallinfo2().fordblks > _TRIM_ABOVE:
                libc.malloc_trim(0)

    threading.Thread(target=trim, name="ctloop-request-log-trim", daemon=True).start()
    return True
