"""The in-memory metadata store, where tests have always imported it from.

It lives in :mod:`ctloop.metadata.memory` because a deployed replica uses it too
(``ctloop.deploy.firstmodel``), and production code does not import ``ctloop.testing``.
"""

from ctloop.metadata.memory import InMemoryMetadataStore

__all__ = ["InMemoryMetadataStore"]
