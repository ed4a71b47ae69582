"""The artifact store: content-addressed, atomic, hash-checked bytes over fsspec.

``open_artifact_store(url)`` opens the store for a folder, ``file://`` URL or
any fsspec URL (``s3://bucket/prefix`` needs ``ctloop[s3]``); without a URL it
uses the project's settings (``CTLOOP_ARTIFACTS_URL``, default
``.ctloop/artifacts``).
"""

from __future__ import annotations

from pathlib import Path

from ctloop.artifacts.base import ArtifactStore, ByteStore, StoredObject

__all__ = ["ArtifactStore", "ByteStore", "StoredObject", "open_artifact_store"]


def open_artifact_store(
    url: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    storage_options: dict[str, object] | None = None,
) -> ArtifactStore:
    """The artifact store at ``url``.

    ``cache_dir`` holds downloaded objects and unpacked folders (default:
    inside a local store, else ``~/.cache/ctloop/artifacts``); ``storage_options``
    go to fsspec (e.g. ``{"endpoint_url": ...}`` for an S3-compatible server).
    Without them, an ``s3://`` store takes its endpoint, region and profile
    from the ``[ctloop.s3]`` table of ctloop.toml, credentials from the AWS variables.
    """
    from ctloop.artifacts.content import ContentStore, open_byte_store

    if url is None or (storage_options is None and url.startswith(("s3://", "s3a://"))):
        from ctloop.core.settings import load_settings

        settings = load_settings()
        url = settings.artifacts_url if url is None else url
        if storage_options is None:
            storage_options = settings.storage_options(url) or None
    return ContentStore(
        open_byte_store(url, storage_options),
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
