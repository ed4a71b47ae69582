"""Issue 19: ctloop declares requires-python >=3.11, and Debian 12's Python 3.11.2 (the
deployment test's base image) has no tarfile extraction filters (3.11.4+): extract_tree
checks the members by hand there, with the same refusals."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ctloop.artifacts.treefile import extract_tree, write_tree
from ctloop.core.errors import IntegrityError


@pytest.fixture(params=["filters", "no-filters"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


def test_a_tree_round_trips(python: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.txt").write_text("trees")
    (src / "sub" / "meta.json").write_text("{}")
    archive = tmp_path / "tree.tar"
    write_tree(src, archive)
    extract_tree(archive, tmp_path / "out")
    assert (tmp_path / "out" / "model.txt").read_text() == "trees"
    assert (tmp_path / "out" / "sub" / "meta.json").read_text() == "{}"


def test_a_member_outside_the_folder_is_refused(python: str, tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises((IntegrityError, tarfile.TarError)):
        extract_tree(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_a_link_out_of_the_folder_is_refused(python: str, tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises((IntegrityError, tarfile.TarError)):
        extract_tree(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "passwd").is_symlink()
