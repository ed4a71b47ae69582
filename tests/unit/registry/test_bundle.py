"""Bundle reading refuses anything but plain, listed, hash-matching members."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ctloop.core.errors import IntegrityError, NotFound, UserInputError
from ctloop.registry.bundle import MANIFEST_NAME, read_bundle


def _bundle(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


MANIFEST = json.dumps({"format": 1, "name": "m", "version": 1, "source_environment": "s",
                       "exported_at": "", "exported_by": "", "model_sha256": "0" * 64,
                       "model_size": 1, "run_ids": [], "files": {}}).encode()


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/passwd", "model/../../x", "other/x"])
def test_a_member_leaving_the_bundle_is_refused(tmp_path: Path, member: str) -> None:
    path = _bundle(tmp_path / "b.tgz", [(MANIFEST_NAME, MANIFEST), (member, b"x")])
    with pytest.raises(IntegrityError, match="not a plain file of a bundle"), read_bundle(path):
        pass
    assert not (tmp_path / "escape.txt").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("model/model.pkl")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    path = _bundle(tmp_path / "b.tgz", [(MANIFEST_NAME, MANIFEST), link])
    with pytest.raises(IntegrityError, match="not a plain file"), read_bundle(path):
        pass


def test_not_a_bundle_missing_and_unlisted_members(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(UserInputError, match="not a ctloop model bundle"), \
            read_bundle(tmp_path / "junk"):
        pass
    with pytest.raises(NotFound, match="No bundle at"), read_bundle(tmp_path / "nope"):
        pass
    path = _bundle(tmp_path / "b.tgz", [(MANIFEST_NAME, MANIFEST), ("model/extra.txt", b"x")])
    with pytest.raises(IntegrityError, match=r"not listed: \['model/extra.txt'\]"), \
            read_bundle(path):
        pass


def test_level2_commands_read_name_at_digits_as_a_version() -> None:
    from ctloop.registry.refs import ModelRef, parse_version_ref

    assert parse_version_ref("churn@3") == ModelRef("churn", version=3)
    assert parse_version_ref("churn:3") == ModelRef("churn", version=3)
    assert parse_version_ref("churn@champion") == ModelRef("churn", alias="champion")
