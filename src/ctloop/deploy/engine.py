"""``ctloop deploy build / up / down``: the container engine found on this machine.

``docker`` is preferred, then ``podman``; compose is ``docker compose`` (the
plugin), else ``docker-compose`` (1.x), else ``podman-compose``. The image is
built from the project folder (the build context, whose ``.dockerignore``
every builder reads) with the export's Dockerfile; ``up`` builds it first when
the engine does not hold it, so a first ``up`` needs no registry.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ctloop.core.errors import CtloopError, UserInputError
from ctloop.core.jsontypes import as_object

__all__ = ["DeployCommandFailed", "Exported", "build_image", "compose", "compose_command",
           "find_engine", "read_export"]


class DeployCommandFailed(CtloopError):
    """The container engine or compose exited non-zero."""

    headline = "deploy failed"
    http_status = 500
    exit_code = 1


@dataclass(frozen=True)
class Exported:
    """What ``build`` and ``up`` need from an export folder."""

    folder: Path
    image: str
    context: Path  # the project folder
    compose_file: Path | None  # None for a Kubernetes export


def find_engine() -> str:
    """``docker`` or ``podman``, whichever is on the PATH (docker first), unless
    ``CTLOOP_CONTAINER_ENGINE`` names one."""
    import os

    chosen = os.environ.get("CTLOOP_CONTAINER_ENGINE", "").strip()
    if chosen:
        if chosen not in ("docker", "podman"):
            raise UserInputError(f"CTLOOP_CONTAINER_ENGINE must be docker or podman, "
                                 f"not {chosen!r}.")
        if shutil.which(chosen) is None:
            raise UserInputError(f"CTLOOP_CONTAINER_ENGINE={chosen}, but {chosen} is not "
                                 "installed; install it or unset the variable.")
        return chosen
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            return engine
    raise UserInputError(
        "No container engine found: install Docker (Debian: apt-get install docker.io) or "
        "Podman, then run the command again.")


def compose_command(engine: str) -> list[str]:
    """How to run compose next to ``engine``."""
    plugin = subprocess.run([engine, "compose", "version"], capture_output=True,
                            check=False, timeout=60)
    if plugin.returncode == 0:
        return [engine, "compose"]
    for standalone in (("docker-compose",) if engine == "docker" else ("podman-compose",)):
        if shutil.which(standalone):
            return [standalone]
    raise UserInputError(
        f"No compose for {engine}: install the compose plugin or "
        f"{'docker-compose' if engine == 'docker' else 'podman-compose'}.")


def read_export(folder: str | Path) -> Exported:
    """The image name and build context an export folder was written for."""
    import yaml

    from ctloop.core.settings import find_project_root

    out = Path(folder).resolve()
    if not (out / "Dockerfile").is_file():
        raise UserInputError(
            f"{out} holds no Dockerfile: give the folder `ctloop deploy export` wrote.")
    compose_file = out / "docker-compose.yaml"
    image = ""
    if compose_file.is_file():
        services = as_object(as_object(yaml.safe_load(compose_file.read_text())).get("services"))
        image = next((str(svc.get("image")) for svc in map(as_object, services.values())
                      if "build" in svc), "")
    elif (out / "kubernetes.yaml").is_file():
        for d in yaml.safe_load_all((out / "kubernetes.yaml").read_text()):
            for c in (d or {}).get("spec", {}).get("template", {}).get("spec", {}).get(
                    "containers", []):
                if c.get("envFrom"):  # the project image reads the settings ConfigMap
                    image = image or str(c["image"])
    if not image:
        raise UserInputError(f"{out} holds no docker-compose.yaml or kubernetes.yaml naming "
                             "the project image: export again.")
    return Exported(out, image, find_project_root(out),
                    compose_file if compose_file.is_file() else None)


def _run(cmd: list[str], cwd: Path, *, quiet: bool) -> None:
    result = subprocess.run(cmd, cwd=cwd, check=False, text=True,
                            capture_output=quiet)
    if result.returncode != 0:
        tail = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()[-1:] \
            if quiet else []
        why = f": {tail[0]}" if tail else " (see its output above)"
        raise DeployCommandFailed(f"`{' '.join(cmd[:3])} ...` exited {result.returncode}{why}")


def image_exists(engine: str, image: str) -> bool:
    return subprocess.run([engine, "image", "inspect", image], capture_output=True,
                          check=False, timeout=60).returncode == 0


def build_image(folder: str | Path, *, engine: str | None = None, quiet: bool = False) -> str:
    """Build the export's image from the project folder; returns its name."""
    exported = read_export(folder)
    engine = engine or find_engine()
    # podman writes OCI images by default, which drop the Dockerfile's HEALTHCHECK
    fmt = ["--format", "docker"] if Path(engine).name == "podman" else []
    _run([engine, "build", *fmt, "-f", str(exported.folder / "Dockerfile"), "-t",
          exported.image, str(exported.context)], exported.context, quiet=quiet)
    return exported.image


def compose(folder: str | Path, action: str, *, engine: str | None = None,
            quiet: bool = False, volumes: bool = False) -> None:
    """``up`` (building the image first when the engine lacks it) or ``down``."""
    exported = read_export(folder)
    if exported.compose_file is None:
        raise UserInputError(
            f"{exported.folder} is a Kubernetes export: apply it with kubectl (see its "
            "README.md); `ctloop deploy up` runs docker-compose exports.")
    engine = engine or find_engine()
    command = compose_command(engine)
    if action == "up":
        if not image_exists(engine, exported.image):
            build_image(folder, engine=engine, quiet=quiet)
        args = ["up", "-d", "--remove-orphans"]
    elif action == "down":
        args = ["down", *(["--volumes"] if volumes else [])]
    else:
        raise UserInputError(f"Unknown compose action {action!r}: up or down.")
    _run([*command, "-f", exported.compose_file.name, *args], exported.folder, quiet=quiet)
