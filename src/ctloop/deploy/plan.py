"""What a deployment runs, independent of the target: services, images, commands.

The plan is built from the settings, so deployment files are generated, never
hand-kept (docs/architecture.md). Both targets render the same plan: the metadata
database (bundled PostgreSQL unless the settings name a server), the object
store settings, a Dask scheduler and workers, the prediction service, the
trigger controller and one controller per declared loop (``ctloop loop run``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ctloop.core.errors import ConfigError
from ctloop.core.secrets import mask_secrets
from ctloop.core.settings import Settings, TomlValue

__all__ = [
    "EXTERNAL_IMAGES",
    "PENDING_COMMANDS",
    "DeploymentPlan",
    "Probe",
    "Service",
    "plan_deployment",
    "size_in_bytes",
]

#: What Kubernetes (RFC 1123 labels) and compose accept as a service name.
_SERVICE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

#: Images the project uses but does not build, pinned. Everything else runs
#: the project image built from the generated Dockerfile.
EXTERNAL_IMAGES = {"postgres": "postgres:16-alpine", "redis": "redis:7-alpine"}

#: ``ctloop`` commands the deployment runs that the CLI does not have yet.
#: Remove an entry when its command lands (a test checks both directions).
PENDING_COMMANDS: frozenset[tuple[str, ...]] = frozenset()

SCHEDULER_PORT = 8786
SERVING_PORT = 8000
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8789
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
SHARED_ARTIFACTS = "/data/artifacts"
_SHARED_ARTIFACTS = SHARED_ARTIFACTS
#: Where the project sits in the image, and its state folder (CTLOOP_HOME): a volume
#: every ctloop container mounts, Dask workers included, so a path one of them is given
#: (a span, a pinned schema) is readable by all; the project root stays the project.
PROJECT_DIR = "/project"
STATE_DIR = f"{PROJECT_DIR}/.ctloop"
PGDATA = "/var/lib/postgresql/data/pgdata"  # a subfolder: a volume root holds lost+found
PROBE_COMMAND = ("ctloop", "deploy", "probe")


@dataclass(frozen=True)
class Probe:
    """How the orchestrator checks a container: an HTTP path on a port, or a command."""

    path: str = ""
    port: int = 0
    command: tuple[str, ...] = ()


@dataclass
class Service:
    """One long-running process of the deployment."""

    name: str
    command: list[str]
    image: str = ""  # "" means the project image
    replicas: int = 1
    ports: list[int] = field(default_factory=list)  # reached by other services
    published: bool = False  # the one service reachable from outside (on the chosen address)
    env: dict[str, str] = field(default_factory=dict)  # non-secret, inline
    secret_env: list[str] = field(default_factory=list)  # keys read from the secrets file
    cpus: float | None = None  # limit (and request for workers)
    memory: str | None = None
    request_cpus: float = 0.1
    request_memory: str = "128MiB"
    depends_on: list[str] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> mount path
    shared: dict[str, str] = field(default_factory=dict)  # volumes every ctloop container sees
    liveness: Probe | None = None
    readiness: Probe | None = None
    pending: bool = False  # runs a ctloop command that does not exist yet
    oneshot: bool = False  # runs to completion on each start (a Job on Kubernetes)


@dataclass
class DeploymentPlan:
    """Every service, the settings they read, the secrets they need, and the project image."""

    image: str
    project_root: str
    name: str  # the compose project name; volumes and networks are named after it
    settings_env: dict[str, str]  # every ctloop container: non-secret settings
    secret_env: dict[str, str]  # every ctloop container: secrets (written to secrets.env only)
    services: list[Service]
    bundled_db: bool
    shared_artifacts: bool
    host: str = "127.0.0.1"
    port: int = SERVING_PORT
    db_secret_env: dict[str, str] = field(default_factory=dict)  # the bundled database's
    notes: list[str] = field(default_factory=list)
    base_image: str = "python:3.11-slim"
    ignored: list[str] = field(default_factory=list)  # project folders kept out of the image
    first_model: str = ""  # the first model's bundle in the image ("" : none exported)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


_OPTIONS = {"image", "workers", "worker_cpus", "worker_memory", "serving_replicas",
            "controllers", "namespace", "s3_endpoint", "name", "base_image", "postgres_image",
            "redis_image", "loop_interval"}


def project_slug(settings: Settings, options: dict[str, TomlValue] | None = None) -> str:
    """The deployment's name: ``[ctloop.deploy] name``, else the project folder's name,
    as compose and Kubernetes accept it (lower-case letters, digits and '-')."""
    options = _deploy_options(settings) if options is None else options
    raw = str(options.get("name") or settings.project_root.resolve().name)
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:40].strip("-")
    if not slug or not _SERVICE_NAME.fullmatch(slug):
        raise ConfigError(
            f"The deployment name {raw!r} has no letter or digit: set name in "
            '[ctloop.deploy] of ctloop.toml (e.g. name = "churn").')
    return slug


def _landing_folders(settings: Settings) -> dict[str, str]:
    """Each declared loop's landing folder (the glob's fixed part) -> its path in the
    containers: a volume shared by the controller and the Dask workers."""
    from pathlib import PurePosixPath

    root = settings.project_root.resolve()
    folders: dict[str, str] = {}
    tables = settings.tables.loops
    for table in tables.values() if isinstance(tables, dict) else []:
        data = table.get("data") if isinstance(table, dict) else None
        if not isinstance(data, str):
            continue  # a SQL source: its spans are materialised under the state folder
        fixed = []
        for part in PurePosixPath(data).parts[:-1]:
            if any(ch in part for ch in "*?["):
                break
            fixed.append(part)
        folder = PurePosixPath(*fixed) if fixed else PurePosixPath(".")
        if folder.is_absolute():
            try:
                folder = PurePosixPath(Path(folder).resolve().relative_to(root))
            except ValueError:
                folders[str(folder)] = str(folder)
                continue
        if str(folder) not in (".", ""):
            folders[str(folder)] = f"{PROJECT_DIR}/{folder}"
    return folders


def _deploy_options(settings: Settings) -> dict[str, TomlValue]:
    options = dict(settings.tables.deploy)
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(
            f"Unknown keys {unknown} in the [deploy] section of ctloop.toml. "
            f"Known keys: {', '.join(sorted(_OPTIONS))}."
        )
    return options


def _declared_loops(settings: Settings) -> list[str]:
    """The names of the project's ``[ctloop.loops.NAME]``, each checked as ``ctloop loop
    run`` would (a broken declaration fails the export, not the deployed pod)."""
    from ctloop.loop.declaration import load_loops

    names = list(load_loops(settings))
    for name in names:
        if not _SERVICE_NAME.fullmatch(f"loop-{name}"):
            raise ConfigError(
                f"Loop {name!r} cannot name a deployed service ('loop-{name}'): use "
                "lower-case letters, digits and '-' (at most 58 characters).")
    return names


def _positive(options: dict[str, TomlValue], key: str, default: float) -> float:
    value = options.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"The [deploy] setting {key!r} must be a number > 0. Got {value!r}.")
    return float(value)


def _is_local(url: str) -> bool:
    if url.startswith("sqlite"):
        return True
    try:
        return (urlsplit(url).hostname or "") in _LOCAL_HOSTS
    except ValueError:
        return False


def _redis_service(url: str, image: str) -> tuple[Service, str, dict[str, str]]:
    """A bundled Redis for a Redis online store on this machine (it stays Redis)."""
    parts = urlsplit(url)
    db = parts.path or "/0"
    password = parts.password or ""
    secret: dict[str, str] = {}
    command = ["redis-server", "--appendonly", "yes"]
    if password:
        secret["REDIS_PASSWORD"] = password
        command = ["sh", "-c", 'exec redis-server --appendonly yes --requirepass "$REDIS_PASSWORD"']
    netloc = f":{password}@online-store:6379" if password else "online-store:6379"
    ping: tuple[str, ...] = ("redis-cli", "ping")
    if password:  # REDISCLI_AUTH: the password never shows in the process list
        ping = ("sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG')
    service = Service(
        name="online-store", image=image, command=command, ports=[6379],
        secret_env=list(secret), volumes={"online": "/data"}, request_cpus=0.1,
        request_memory="128MiB", memory="1GiB",
        liveness=Probe(command=ping),
        readiness=Probe(command=ping),
    )
    return service, f"redis://{netloc}{db}", secret


def _s3_endpoint(settings: Settings, options: dict[str, TomlValue]) -> str:
    import os

    s3 = settings.tables.s3
    endpoint = str(options.get("s3_endpoint") or s3.get("endpoint_url")
                   or os.environ.get("AWS_ENDPOINT_URL", ""))
    if endpoint and not options.get("s3_endpoint") and _is_local(endpoint):
        raise ConfigError(
            f"The S3 endpoint {mask_secrets(endpoint)} is this machine's loopback, which "
            "containers and pods cannot reach. Set s3_endpoint in [ctloop.deploy] of "
            'ctloop.toml to the address they use (e.g. "http://minio:9000") and export again.'
        )
    return endpoint


@dataclass
class _Parts:
    """What the plan gathers on its way: services, secrets, notes for the README."""

    keep: dict[str, str]
    services: list[Service] = field(default_factory=list)
    secret_env: dict[str, str] = field(default_factory=dict)
    db_secret: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _metadata_store(settings: Settings, options: dict[str, TomlValue], parts: _Parts) -> bool:
    """A metadata database on this machine becomes a bundled PostgreSQL (its password
    kept from the previous export); True when bundled."""
    import secrets as tokens

    if not _is_local(settings.metadata_url):
        parts.secret_env["CTLOOP_METADATA_URL"] = settings.metadata_url
        return False
    password = parts.keep.get("POSTGRES_PASSWORD") or tokens.token_urlsafe(18)
    parts.db_secret = {"POSTGRES_USER": "ctloop", "POSTGRES_PASSWORD": password,
                       "POSTGRES_DB": "ctloop"}
    parts.secret_env["CTLOOP_METADATA_URL"] = (
        f"postgresql+psycopg://ctloop:{password}@metadata-db:5432/ctloop")
    parts.notes.append(
        f"The metadata store {settings.metadata_url} is local to this machine; the "
        "deployment bundles PostgreSQL (service metadata-db) with a generated password "
        "kept in secrets.env."
    )
    parts.services.append(Service(
        name="metadata-db", image=str(options.get("postgres_image",
                                                EXTERNAL_IMAGES["postgres"])),
        command=[], ports=[5432], env={"PGDATA": PGDATA},
        secret_env=list(parts.db_secret), volumes={"metadata": "/var/lib/postgresql/data"},
        request_cpus=0.25, request_memory="256MiB", memory="1GiB",
        liveness=Probe(command=("pg_isready", "-U", "ctloop")),
        readiness=Probe(command=("pg_isready", "-U", "ctloop")),
    ))
    return True


def _artifact_store(settings: Settings, target: str, parts: _Parts) -> tuple[str, bool]:
    """The artifacts URL in the containers, and whether it is a volume they share (a
    local folder: single host, refused on Kubernetes)."""
    artifacts = settings.artifacts_url
    shared_artifacts = artifacts.startswith("file:") or "://" not in artifacts
    if not shared_artifacts:
        return artifacts, False
    if target == "kubernetes":
        raise ConfigError(
            f"The artifact store {artifacts} is a local folder, which pods on other "
            'machines cannot read. Set artifacts = "s3://bucket/prefix" in ctloop.toml '
            "(or CTLOOP_ARTIFACTS_URL) before exporting for Kubernetes."
        )
    parts.notes.append(
        "Artifacts live in a volume shared by every container (single host only); "
        "use s3://bucket/prefix to run on several machines."
    )
    return f"file://{_SHARED_ARTIFACTS}", True


def _online_store(settings: Settings, options: dict[str, TomlValue], parts: _Parts) -> None:
    """A Redis on this machine becomes a bundled Redis; SQLite moves to the state volume."""
    online = settings.online_store_url
    if online.startswith("redis") and _is_local(online):
        redis, online, redis_secret = _redis_service(
            online, str(options.get("redis_image", EXTERNAL_IMAGES["redis"])))
        parts.services.append(redis)
        parts.db_secret.update(redis_secret)
        parts.notes.append("The Redis online store on this machine becomes service online-store.")
    elif online.startswith("sqlite"):
        online = f"sqlite:///{STATE_DIR}/online.db"
        parts.notes.append(
            "The online store is SQLite in the shared state volume (one host); set "
            'online_store = "redis://HOST:6379/0" for several machines.'
        )
    parts.secret_env["CTLOOP_ONLINE_STORE_URL"] = online


def _s3_settings(settings: Settings, options: dict[str, TomlValue], parts: _Parts,
                 settings_env: dict[str, str]) -> None:
    """S3 artifacts: the endpoint and region as settings, the keys as secrets to fill in."""
    endpoint = _s3_endpoint(settings, options)
    if endpoint:
        settings_env["AWS_ENDPOINT_URL"] = endpoint
    s3 = settings.tables.s3
    settings_env["AWS_DEFAULT_REGION"] = str(s3.get("region", "us-east-1"))
    # Never copied from the exporting machine: filled in by whoever deploys.
    parts.secret_env["AWS_ACCESS_KEY_ID"] = parts.keep.get("AWS_ACCESS_KEY_ID", "")
    parts.secret_env["AWS_SECRET_ACCESS_KEY"] = parts.keep.get("AWS_SECRET_ACCESS_KEY", "")
    parts.notes.append("Fill in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in secrets.env.")


def _bundle_key(parts: _Parts) -> None:
    """The key the first model's bundle is signed with, when it is, kept as a secret."""
    import os

    from ctloop.registry.bundle import KEY_ENV

    bundle_key = parts.keep.get(KEY_ENV) or os.environ.get(KEY_ENV, "")
    if bundle_key:
        parts.secret_env[KEY_ENV] = bundle_key
        parts.notes.append(f"{KEY_ENV} (the bundles' signing key) is kept in secrets.env: "
                           "the deployment imports only bundles signed with it.")


@dataclass(frozen=True)
class _Mounts:
    """What every ctloop container mounts, and whom it starts after."""

    volume: dict[str, str]  # the shared artifacts folder, when it is one
    shared: dict[str, str]  # the state folder and the landing folders
    base: list[str]  # the bundled stores
    after: list[str]  # the replicas, with a first model


def _dask_services(options: dict[str, TomlValue], mounts: _Mounts, workers: int,
                   scheduler: str) -> list[Service]:
    """The Dask scheduler and its workers (the workers sized from ``[deploy]``)."""
    worker_cpus = _positive(options, "worker_cpus", 1)
    worker_memory = str(options.get("worker_memory", "4GB"))
    cpus = f"{worker_cpus:g}"
    return [Service(
        name="dask-scheduler", depends_on=list(mounts.after),
        command=["dask", "scheduler", "--port", str(SCHEDULER_PORT),
                 "--dashboard-address", f":{DASHBOARD_PORT}"],
        ports=[SCHEDULER_PORT, DASHBOARD_PORT],
        # Worker deaths come back at once, so the engine's retries decide and are recorded.
        env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"},
        request_cpus=0.25, request_memory="512MiB", memory="2GiB",
        liveness=Probe(path="/health", port=DASHBOARD_PORT),
        readiness=Probe(path="/health", port=DASHBOARD_PORT),
    ), Service(
        name="dask-worker", replicas=workers, cpus=worker_cpus, memory=worker_memory,
        request_cpus=worker_cpus, request_memory=worker_memory,
        command=["dask", "worker", scheduler, "--nthreads", str(max(1, int(worker_cpus))),
                 "--memory-limit", worker_memory, "--dashboard-address",
                 f":{WORKER_DASHBOARD_PORT}", "--resources",
                 f"cpus={cpus},memory={size_in_bytes(worker_memory)}"],
        depends_on=["dask-scheduler", *mounts.base, *mounts.after],
        volumes=dict(mounts.volume), shared=dict(mounts.shared),
        liveness=Probe(path="/health", port=WORKER_DASHBOARD_PORT),
        readiness=Probe(path="/health", port=WORKER_DASHBOARD_PORT),
    )]


def _serving_service(options: dict[str, TomlValue], mounts: _Mounts, first_model: str) -> Service:
    """The published prediction service; with a first model it answers from the bundle
    and waits for nothing."""
    serve = ["ctloop", "serve", "--host", "0.0.0.0", "--port", str(SERVING_PORT)]
    if first_model:
        serve = ["ctloop", "deploy", "serve", "--bundle", first_model, "--host", "0.0.0.0",
                 "--port", str(SERVING_PORT)]
    return Service(
        name="serving", replicas=int(_positive(options, "serving_replicas", 2)),
        command=serve, ports=[SERVING_PORT], published=True,
        depends_on=[] if first_model else list(mounts.base), volumes=dict(mounts.volume),
        shared=dict(mounts.shared),
        request_cpus=0.5, request_memory="512MiB", cpus=2, memory="2GiB",
        liveness=Probe(path="/health", port=SERVING_PORT),
        readiness=Probe(path="/ready", port=SERVING_PORT),
    )


def _controller_services(settings: Settings, options: dict[str, TomlValue], mounts: _Mounts,
                         first_model: str) -> list[Service]:
    """The trigger controller, each declared loop's controller and the first model's
    one-shot import."""
    controllers = int(_positive(options, "controllers", 1))
    waits = ["dask-scheduler", *mounts.base, *mounts.after]
    services = [Service(
        name="controller", replicas=controllers,
        command=["ctloop", "triggers", "run"],
        depends_on=list(waits), volumes=dict(mounts.volume), shared=dict(mounts.shared),
        request_cpus=0.1, request_memory="256MiB", cpus=1, memory="1GiB",
        liveness=Probe(command=PROBE_COMMAND), readiness=Probe(command=PROBE_COMMAND),
    )]
    tick = []  # seconds between the loop controllers' looks for new spans (default 30)
    if "loop_interval" in options:
        tick = ["--interval", f"{_positive(options, 'loop_interval', 30):g}"]
    services.extend(Service(  # each loop's live controller: lease-guarded, so replicas wait
        name=f"loop-{loop}", replicas=controllers,
        command=["ctloop", "loop", "run", loop, *tick],
        depends_on=list(waits), volumes=dict(mounts.volume), shared=dict(mounts.shared),
        request_cpus=0.5, request_memory="1GiB", cpus=2, memory="4GiB",
        liveness=Probe(command=PROBE_COMMAND), readiness=Probe(command=PROBE_COMMAND),
    ) for loop in _declared_loops(settings))
    if first_model:  # into the registry while the replicas answer from the bundle
        services.append(Service(
            name="first-model", command=["ctloop", "deploy", "first-model", first_model],
            depends_on=[*mounts.base, *mounts.after], volumes=dict(mounts.volume),
            shared=dict(mounts.shared),
            request_cpus=0.1, request_memory="256MiB", cpus=1, memory="1GiB", oneshot=True,
        ))
    return services


def plan_deployment(
    settings: Settings, target: str, *, host: str = "127.0.0.1", port: int = SERVING_PORT,
    keep: Mapping[str, str] | None = None, image: str | None = None, first_model: str = "",
) -> DeploymentPlan:
    """The services for ``target`` ("docker-compose" or "kubernetes") from ``settings``.

    Only the prediction service is published, on ``host:port``; every other
    service is reachable inside the deployment's network only. ``keep`` holds
    the secrets of a previous export (its ``secrets.env``): a generated password
    is taken from there, so a re-export never locks the services out of the
    database volume, and keys filled in by hand stay filled in. ``first_model``
    (the path of a bundle in the image): the replicas answer from it at start
    without waiting for the database, a one-shot ``first-model`` service imports
    it into the registry, and every other service starts once the replicas answer,
    so they do not take the CPU the replicas start with.

    Raises:
        ConfigError: the settings cannot work on more than one machine (a
            local artifact folder on Kubernetes, a loopback S3 endpoint) or
            ``[deploy]`` is invalid.
    """
    keep = dict(keep or {})
    options = _deploy_options(settings)
    slug = project_slug(settings, options)
    workers = int(_positive(options, "workers", 2))
    _positive(options, "worker_cpus", 1)
    size_in_bytes(str(options.get("worker_memory", "4GB")))
    parts = _Parts(keep=keep)
    bundled_db = _metadata_store(settings, options, parts)
    artifacts, shared_artifacts = _artifact_store(settings, target, parts)
    _online_store(settings, options, parts)
    scheduler = f"tcp://dask-scheduler:{SCHEDULER_PORT}"
    settings_env = {
        "CTLOOP_HOME": STATE_DIR,
        "CTLOOP_ARTIFACTS_URL": artifacts,
        "CTLOOP_RUNNER": scheduler,
        "CTLOOP_MAX_WORKERS": str(max(workers, settings.max_workers)),
    }
    if artifacts.startswith(("s3://", "s3a://")):
        _s3_settings(settings, options, parts, settings_env)
    if first_model:
        _bundle_key(parts)
    landing = _landing_folders(settings)
    shared = {"state": STATE_DIR, **{
        "landing" if i == 0 else f"landing-{i}": path
        for i, path in enumerate(sorted(set(landing.values())))}}
    if target == "kubernetes":
        parts.notes.append(
            "The state folder and the landing folders are ReadWriteMany volumes shared by "
            "every ctloop pod (Dask workers read the spans there): the cluster needs a "
            "storage class that offers ReadWriteMany (NFS, CephFS, EFS, Azure Files).")
    # The bundled stores start first; with a first model, the replicas start first (on
    # the bundle) and the rest after them.
    mounts = _Mounts(volume={"artifacts": _SHARED_ARTIFACTS} if shared_artifacts else {},
                     shared=shared, base=[s.name for s in parts.services],
                     after=["serving"] if first_model else [])
    services = [*parts.services, *_dask_services(options, mounts, workers, scheduler),
                _serving_service(options, mounts, first_model),
                *_controller_services(settings, options, mounts, first_model)]
    for svc in services:
        if not svc.image:
            svc.secret_env = list(parts.secret_env)
    return DeploymentPlan(
        image=image or str(options.get("image", f"ctloop-{slug}:latest")),
        project_root=str(settings.project_root),
        name=f"ctloop-{slug}",
        base_image=str(options.get("base_image", "python:3.11-slim")),
        ignored=sorted(landing),
        settings_env=settings_env,
        secret_env=parts.secret_env,
        services=services,
        bundled_db=bundled_db,
        shared_artifacts=shared_artifacts,
        host=host,
        port=port,
        db_secret_env=parts.db_secret,
        notes=[mask_secrets(n) for n in parts.notes],
        first_model=first_model,
    )


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def size_in_bytes(size: str) -> int:
    """``"4GB"`` -> 4000000000, as Dask reads worker memory."""
    text = size.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number) :]
    try:
        return int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise ConfigError(
            f"The [deploy] setting 'worker_memory' must be a size like '4GB' or '8GiB'. "
            f"Got {size!r}."
        ) from None
