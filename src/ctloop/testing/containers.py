"""A container engine and local base images for the deployment tests, with no registry.

The deployment test builds the exported image and runs ``docker compose up``
for real. No container registry is reachable on the test machines, so the two
images the export starts from are built here from Debian packages with
``debootstrap`` (``apt-get install debootstrap``; needs root):

- :func:`python_base_image` -- a stand-in for ``python:3.11-slim``: Debian
  bookworm's Python 3.11 in a venv at ``/usr/local`` (``python``, ``pip`` on
  the PATH as in the official image), ``ca-certificates``, ``tzdata``,
  ``netbase``, and, like the official image, no ``libgomp1`` (the exported
  Dockerfile must install what LightGBM needs). The machine's CA bundle and
  a ``pip.conf`` pointing at it are copied in, so ``pip`` inside image
  builds trusts what the host trusts.
- :func:`postgres_image` -- a stand-in for the official ``postgres`` image:
  Debian's PostgreSQL 15 with an entrypoint that honours the same variables
  (``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB``, ``PGDATA``):
  it initialises an empty data directory, owns it, and runs ``postgres`` as
  the ``postgres`` user; ``pg_isready`` is on the PATH.

Each root filesystem is kept as a tarball under ``$CTLOOP_CONTAINERS_DIR``
(else ``$XDG_CACHE_HOME/ctloop/containers``, ``~/.cache/ctloop/containers``),
named by a hash of what goes into it, so a machine debootstraps once (about
two minutes each) and later runs only ``docker import`` (seconds) when the
engine lost the image. A file lock keeps two test processes from building the
same one at once.

:func:`ensure_engine` finds ``docker`` (or ``podman``) and, as root on a
machine where the Docker daemon is installed but not running (no systemd in
a CI container), starts ``dockerd`` itself, logging to ``dockerd.log`` in the
cache folder. What works on the ctloop CI machines (Debian 12, kernel 6.x, as
root, no systemd): ``docker.io`` 20.10 with the overlay2 storage driver and
its default bridge network with iptables NAT; builds use the classic builder
(no buildx plugin), which reads ``.dockerignore`` beside the context.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ctloop.core.errors import ConfigError

__all__ = [
    "POSTGRES_IMAGE",
    "PYTHON_IMAGE",
    "ContainerUnavailable",
    "Rootfs",
    "base_images",
    "containers_root",
    "ensure_engine",
    "image_exists",
    "postgres_image",
    "python_base_image",
]

PYTHON_IMAGE = "ctloop-test/python:3.11-slim"
POSTGRES_IMAGE = "ctloop-test/postgres:15"
SUITE = "bookworm"
MIRROR = os.environ.get("CTLOOP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerUnavailable(ConfigError):
    """No container engine, no daemon, or a base image could not be built."""


@dataclass(frozen=True)
class Rootfs:
    """A Debian root filesystem: packages installed after debootstrap, then a setup script
    run in the chroot, then image settings for ``docker import --change``."""

    name: str
    packages: tuple[str, ...]
    setup: str  # shell, run in the chroot as root after the packages
    changes: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()  # (path in the image, text) written before setup

    def key(self) -> str:
        text = repr((SUITE, self.packages, self.setup, self.changes, self.files, _host_ca()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def containers_root() -> Path:
    """Where root filesystem tarballs and the daemon log are kept between runs."""
    explicit = os.environ.get("CTLOOP_CONTAINERS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ctloop" / "containers"


def _host_ca() -> str:
    path = Path("/etc/ssl/certs/ca-certificates.crt")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else ""


def _run(cmd: list[str], *, timeout: float = 1800, **kwargs: object) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise ContainerUnavailable(f"{' '.join(cmd[:3])} failed: " + "\n".join(tail))
    return str(result.stdout)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    root = containers_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _daemon_up(engine: str) -> bool:
    return subprocess.run([engine, "info"], capture_output=True, timeout=60,
                          check=False).returncode == 0


def ensure_engine(wait: float = 120) -> str:
    """``docker`` (or ``podman``) ready to run containers; starts ``dockerd`` if needed.

    Raises:
        ContainerUnavailable: no engine on the PATH, or its daemon does not answer
            (and cannot be started here: not root, or ``dockerd`` missing).
    """
    engine = next((e for e in ("docker", "podman") if shutil.which(e)), None)
    if engine is None:
        raise ContainerUnavailable(
            "No container engine: install Debian's docker.io (apt-get install docker.io).")
    if _daemon_up(engine):
        return engine
    dockerd = shutil.which("dockerd")
    if engine != "docker" or dockerd is None or os.geteuid() != 0:
        raise ContainerUnavailable(
            f"`{engine} info` fails and the Docker daemon cannot be started here "
            "(needs root and dockerd on the PATH).")
    with _locked("dockerd"):
        if not _daemon_up(engine):
            log = open(containers_root() / "dockerd.log", "ab")
            subprocess.Popen([dockerd], stdout=log, stderr=log, start_new_session=True)
            deadline = time.monotonic() + wait
            while not _daemon_up(engine):
                if time.monotonic() > deadline:
                    raise ContainerUnavailable(
                        f"dockerd did not answer within {wait:.0f} s; see "
                        f"{containers_root() / 'dockerd.log'}.")
                time.sleep(1)
    return engine


def image_exists(engine: str, image: str) -> bool:
    """Whether the engine holds ``image`` locally."""
    return subprocess.run([engine, "image", "inspect", image], capture_output=True,
                          timeout=60, check=False).returncode == 0


def _build_tarball(spec: Rootfs, tarball: Path) -> None:
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise ContainerUnavailable(
            "debootstrap is not installed (apt-get install debootstrap); it builds the "
            "local base images, since no container registry is reachable.")
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix=f"{spec.name}-") as tmp:
        root = Path(tmp) / "rootfs"
        _run([debootstrap, "--variant=minbase", SUITE, str(root), MIRROR])
        ca = Path("/etc/ssl/certs/ca-certificates.crt")
        files = list(spec.files)
        for path, text in files:
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            if path.startswith(("/usr/local/bin/", "/usr/sbin/")):
                target.chmod(0o755)
        shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
        script = (
            "set -eu\nexport DEBIAN_FRONTEND=noninteractive\n"
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d\n"
            "chmod 755 /usr/sbin/policy-rc.d\n"
            "apt-get update -qq\n"
            "apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "
            f"{' '.join(spec.packages)}\n"
            f"{spec.setup}\n"
            "rm -f /usr/sbin/policy-rc.d\n"
            "apt-get clean\nrm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin\n"
        )
        (root / "tmp" / "setup.sh").write_text(script)
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=False)
        try:
            _run(["chroot", str(root), "sh", "/tmp/setup.sh"],
                 env={"PATH": _PATH, "HOME": "/root", "LANG": "C.UTF-8"})
        finally:
            subprocess.run(["umount", str(root / "proc")], check=False)
        (root / "tmp" / "setup.sh").unlink()
        if ca.is_file() and (root / "etc" / "ssl" / "certs").is_dir():
            shutil.copy2(ca, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        (root / "etc" / "resolv.conf").write_text("")
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
        partial.replace(tarball)


def _image(spec: Rootfs, image: str, engine: str | None) -> str:
    engine = engine or ensure_engine()
    with _locked(spec.name):
        tag = f"{image}-{spec.key()}"  # the content hash; `image` points at the newest
        if image_exists(engine, tag):
            _run([engine, "tag", tag, image])
            return image
        tarball = containers_root() / f"{spec.name}-{spec.key()}.tar"
        if not tarball.is_file():
            if os.geteuid() != 0:
                raise ContainerUnavailable("Building a base image with debootstrap needs root.")
            _build_tarball(spec, tarball)
        changes = [arg for change in spec.changes for arg in ("--change", change)]
        _run([engine, "import", *changes, str(tarball), tag])
        _run([engine, "tag", tag, image])
    return image


_PYTHON = Rootfs(
    name="python-3.11-slim",
    packages=("python3.11", "python3.11-venv", "ca-certificates", "netbase", "tzdata"),
    setup=(
        "python3.11 -m venv /usr/local\n"
        "ln -sf /usr/local/bin/python3.11 /usr/local/bin/python\n"
        "/usr/local/bin/python -m pip --version\n"
    ),
    files=(("/etc/pip.conf", "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"),),
    changes=(f"ENV PATH={_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)

_POSTGRES_ENTRYPOINT = """\
#!/bin/sh
# Stand-in for the official postgres image's entrypoint: the same variables.
set -eu
PGBIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA
[ "${1:-postgres}" = postgres ] && [ $# -gt 0 ] && shift
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec runuser -u postgres -- "$0" postgres "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" > "$pwfile"
  "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \\
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \\"$POSTGRES_DB\\";" \\
      | "$PGBIN/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "initialised $PGDATA"
fi
exec "$PGBIN/postgres" -D "$PGDATA" "$@"
"""

_POSTGRES = Rootfs(
    name="postgres-15",
    packages=("postgresql-15", "postgresql-client-15"),
    setup="rm -rf /var/lib/postgresql/15 /etc/postgresql/15\n",
    files=(
        ("/etc/postgresql-common/createcluster.conf", "create_main_cluster = false\n"),
        ("/usr/local/bin/docker-entrypoint.sh", _POSTGRES_ENTRYPOINT),
    ),
    changes=(
        f"ENV PATH=/usr/lib/postgresql/15/bin:{_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PGDATA=/var/lib/postgresql/data",
        'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "EXPOSE 5432",
    ),
)


def python_base_image(engine: str | None = None) -> str:
    """The ``python:3.11-slim`` stand-in, built (or re-imported) when the engine lacks it."""
    return _image(_PYTHON, PYTHON_IMAGE, engine)


def postgres_image(engine: str | None = None) -> str:
    """The ``postgres`` stand-in (Debian's PostgreSQL 15, the official entrypoint's
    variables), built (or re-imported) when the engine lacks it."""
    return _image(_POSTGRES, POSTGRES_IMAGE, engine)


def base_images(engine: str | None = None) -> Future[tuple[str, str]]:
    """Both stand-ins, built side by side in the background: ``(python, postgres)``.

    On a fresh machine each is a debootstrap of one to two minutes that waits mostly on
    downloads and dpkg, not on a core, so the two overlap each other and whatever the
    caller does meanwhile (the deployment test trains its first model). Each keeps its
    own lock and tarball; ``result()`` raises what building either raised.
    """
    engine = engine or ensure_engine()
    pool = ThreadPoolExecutor(3, thread_name_prefix="base-image")
    python = pool.submit(python_base_image, engine)
    postgres = pool.submit(postgres_image, engine)
    both = pool.submit(lambda: (python.result(), postgres.result()))
    pool.shutdown(wait=False)
    return both
