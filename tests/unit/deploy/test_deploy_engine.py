"""``ctloop deploy build``: the engine chosen and the command it is given.

The engine here is a recording script on PATH: what is tested is the command
ctloop composes (the real engines build in ``tests/integration/test_deploy_compose.py``).
Podman writes OCI images unless told otherwise, and OCI images drop the Dockerfile's
HEALTHCHECK: ctloop asks for the docker format.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.cli.main import main


def _recording_engine(folder: Path, name: str) -> Path:
    log = folder / f"{name}.args"
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(0o755)
    return log


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CTLOOP_HOME", str(tmp_path / ".ctloop"))
    (tmp_path / "ctloop.toml").write_text('[ctloop.deploy]\nname = "engines"\n')
    assert main(["deploy", "export", "deploy"]) == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # only the recording engines are found
    return bin_dir


def test_podman_builds_the_docker_format_so_the_healthcheck_is_kept(
        exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _recording_engine(exported, "podman")
    monkeypatch.setenv("CTLOOP_CONTAINER_ENGINE", "podman")
    assert main(["deploy", "build", "deploy"]) == 0
    args = log.read_text().split()
    assert args[:3] == ["build", "--format", "docker"], args
    assert "ctloop-engines:latest" in args


def test_docker_is_preferred_and_given_no_format(exported: Path) -> None:
    docker, podman = _recording_engine(exported, "docker"), _recording_engine(exported, "podman")
    assert main(["deploy", "build", "deploy"]) == 0
    assert docker.read_text().split()[0] == "build" and "--format" not in docker.read_text()
    assert not podman.exists()


def test_an_unknown_or_missing_engine_is_one_line(
        exported: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CTLOOP_CONTAINER_ENGINE", "nerdctl")
    assert main(["deploy", "build", "deploy"]) == 2
    assert "must be docker or podman" in capsys.readouterr().err
    monkeypatch.setenv("CTLOOP_CONTAINER_ENGINE", "podman")
    assert main(["deploy", "build", "deploy"]) == 2
    assert "podman is not installed" in capsys.readouterr().err
    monkeypatch.delenv("CTLOOP_CONTAINER_ENGINE")
    assert main(["deploy", "build", "deploy"]) == 2
    assert "No container engine found" in capsys.readouterr().err
