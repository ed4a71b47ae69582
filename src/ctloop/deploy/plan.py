"""What a deployment runs, independent of the target: services, images, commands.

The plan is built from the settings, so deployment files are generated, never
hand-kept (DESIGN.md). Both targets render the same plan: the metadata
database (bundled PostgreSQL unless the settings name a server), the object
store settings, a Dask scheduler and workers, the prediction service and the
trigger controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ctloop.core.errors import ConfigError
from ctloop.core.secrets import mask_secrets
from ctloop.core.settings import Settings

__all__ = [
    "EXTERNAL_IMAGES",
    "PENDING_COMMANDS",
    "DeploymentPlan",
    "Service",
    "plan_deployment",
    "size_in_bytes",
]

#: Images the project uses but does not build, pinned. Everything else runs
#: the project image built from the generated Dockerfile.
EXTERNAL_IMAGES = {"postgres": "postgres:16-alpine"}

#: ``ctloop`` commands the deployment runs that the CLI does not have yet.
#: Remove an entry when its command lands (a test checks both directions).
PENDING_COMMANDS: frozenset[tuple[str, ...]] = frozenset()

SCHEDULER_PORT = 8786
SERVING_PORT = 8000
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
_BUNDLED_DB_URL = "postgresql+psycopg://ctloop:ctloop@metadata-db:5432/ctloop"
_SHARED_ARTIFACTS = "/data/artifacts"


@dataclass
class Service:
    """One long-running process of the deployment."""

    name: str
    command: list[str]
    image: str = ""  # "" means the project image
    replicas: int = 1
    ports: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory: str | None = None
    depends_on: list[str] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> mount path
    pending: bool = False  # runs a ctloop command that does not exist yet


@dataclass
class DeploymentPlan:
    """Every service, the shared settings they read, and the project image."""

    image: str
    project_root: str
    settings_env: dict[str, str]
    secret_keys: list[str]
    services: list[Service]
    bundled_db: bool
    shared_artifacts: bool
    notes: list[str] = field(default_factory=list)

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


def _deploy_options(settings: Settings) -> dict[str, Any]:
    options = dict(settings.extra.get("deploy", {}))
    known = {"image", "workers", "worker_cpus", "worker_memory", "serving_replicas", "namespace"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"Unknown keys {unknown} in the [deploy] section of ctloop.toml. "
            f"Known keys: {', '.join(sorted(known))}."
        )
    return options


def _positive(options: dict[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"The [deploy] setting {key!r} must be a number > 0. Got {value!r}.")
    return float(value)


def _is_local_db(url: str) -> bool:
    if url.startswith("sqlite"):
        return True
    return (urlsplit(url).hostname or "") in _LOCAL_HOSTS


def plan_deployment(settings: Settings, target: str) -> DeploymentPlan:
    """The services for ``target`` ("docker-compose" or "kubernetes") from ``settings``.

    Raises:
        ConfigError: the settings cannot work on more than one machine (a
            local artifact folder on Kubernetes) or ``[deploy]`` is invalid.
    """
    options = _deploy_options(settings)
    workers = int(_positive(options, "workers", 2))
    worker_cpus = _positive(options, "worker_cpus", 1)
    worker_memory = str(options.get("worker_memory", "4GB"))
    notes: list[str] = []

    bundled_db = _is_local_db(settings.metadata_url)
    metadata_url = _BUNDLED_DB_URL if bundled_db else settings.metadata_url
    if bundled_db:
        notes.append(
            f"The metadata store {settings.metadata_url} is local to this machine; the "
            "deployment bundles PostgreSQL (service metadata-db) instead."
        )

    artifacts = settings.artifacts_url
    shared_artifacts = artifacts.startswith("file:") or "://" not in artifacts
    if shared_artifacts:
        if target == "kubernetes":
            raise ConfigError(
                f"The artifact store {artifacts} is a local folder, which pods on other "
                'machines cannot read. Set artifacts = "s3://bucket/prefix" in ctloop.toml '
                "(or CTLOOP_ARTIFACTS_URL) before exporting for Kubernetes."
            )
        artifacts = f"file://{_SHARED_ARTIFACTS}"
        notes.append(
            "Artifacts live in a volume shared by every container (single host only); "
            "use s3://bucket/prefix to run on several machines."
        )

    scheduler = f"tcp://dask-scheduler:{SCHEDULER_PORT}"
    settings_env = {
        "CTLOOP_HOME": "/project/.ctloop",
        "CTLOOP_METADATA_URL": metadata_url,
        "CTLOOP_ARTIFACTS_URL": artifacts,
        "CTLOOP_ONLINE_STORE_URL": settings.online_store_url
        if not _is_local_db(settings.online_store_url)
        else "sqlite:////project/.ctloop/online.db",
        "CTLOOP_RUNNER": scheduler,
        "CTLOOP_MAX_WORKERS": str(max(workers, settings.max_workers)),
    }
    secret_keys = ["CTLOOP_METADATA_URL"]
    if artifacts.startswith(("s3://", "s3a://")):
        s3 = settings.extra.get("s3", {})
        settings_env["AWS_ENDPOINT_URL"] = str(s3.get("endpoint_url", ""))
        settings_env["AWS_DEFAULT_REGION"] = str(s3.get("region", "us-east-1"))
        # Never copied from the exporting machine: filled in by whoever deploys.
        settings_env["AWS_ACCESS_KEY_ID"] = ""
        settings_env["AWS_SECRET_ACCESS_KEY"] = ""
        secret_keys += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        notes.append("Fill in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY before deploying.")

    if _is_local_db(settings.online_store_url):
        notes.append(
            "The online store is SQLite inside each container; set online_store = "
            '"redis://HOST:6379/0" for online features shared by every replica.'
        )
    volume = {"artifacts": _SHARED_ARTIFACTS} if shared_artifacts else {}
    base = ["metadata-db"] if bundled_db else []
    services: list[Service] = []
    if bundled_db:
        services.append(
            Service(
                name="metadata-db",
                image=EXTERNAL_IMAGES["postgres"],
                command=[],
                ports=[5432],
                env={
                    "POSTGRES_USER": "ctloop",
                    "POSTGRES_PASSWORD": "ctloop",
                    "POSTGRES_DB": "ctloop",
                },
                volumes={"metadata": "/var/lib/postgresql/data"},
            )
        )
    services.append(
        Service(
            name="dask-scheduler",
            command=["dask", "scheduler", "--port", str(SCHEDULER_PORT), "--no-dashboard"],
            ports=[SCHEDULER_PORT],
            # Worker deaths come back at once, so the engine's retries decide and are recorded.
            env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"},
        )
    )
    cpus = f"{worker_cpus:g}"
    services.append(
        Service(
            name="dask-worker",
            replicas=workers,
            cpus=worker_cpus,
            memory=worker_memory,
            command=[
                "dask",
                "worker",
                scheduler,
                "--nthreads",
                str(max(1, int(worker_cpus))),
                "--memory-limit",
                worker_memory,
                "--resources",
                f"cpus={cpus},memory={size_in_bytes(worker_memory)}",
            ],
            depends_on=["dask-scheduler", *base],
            volumes=dict(volume),
        )
    )
    services.append(
        Service(
            name="serving",
            replicas=int(_positive(options, "serving_replicas", 1)),
            command=["ctloop", "serve", "--host", "0.0.0.0", "--port", str(SERVING_PORT)],
            ports=[SERVING_PORT],
            depends_on=list(base),
            volumes=dict(volume),
        )
    )
    services.append(
        Service(
            name="triggers",
            command=["ctloop", "triggers", "run"],
            depends_on=["dask-scheduler", *base],
            volumes=dict(volume),
        )
    )
    return DeploymentPlan(
        image=str(options.get("image", "ctloop-project:latest")),
        project_root=str(settings.home.parent),
        settings_env=settings_env,
        secret_keys=secret_keys,
        services=services,
        bundled_db=bundled_db,
        shared_artifacts=shared_artifacts,
        notes=[mask_secrets(n) for n in notes],
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
