"""The health probe of deployed controllers (``ctloop deploy probe``).

A controller serves no HTTP, so its liveness and readiness probes run this:
the state folder (a mounted volume) is writable by this user, and the metadata
store answers. Each failure is one line naming the folder or the store, not
the "connection" error a non-root process on a root-owned volume used to get.
"""

from __future__ import annotations

from ctloop.core.errors import StoreError
from ctloop.core.paths import require_writable
from ctloop.core.secrets import mask_secrets
from ctloop.core.settings import Settings

__all__ = ["check_health"]


def check_health(settings: Settings) -> None:
    """Raise unless the state folder is writable and the metadata store answers."""
    home = settings.home
    require_writable(home, "state folder")
    from ctloop.metadata import open_metadata_store

    try:
        open_metadata_store(settings.metadata_url).close()
    except Exception as exc:
        raise StoreError(
            f"The metadata store {mask_secrets(settings.metadata_url)} does not answer: "
            f"{type(exc).__name__}: {mask_secrets(str(exc)).splitlines()[0][:200]}") from None
