"""Settings precedence, errors and hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

import ctloop
from ctloop.core.errors import ConfigError, CtloopError, NotFound
from ctloop.core.hashing import fingerprint, hash_bytes, hash_file
from ctloop.core.settings import load_settings


def test_defaults_live_under_dot_ctloop(ctloop_home: Path) -> None:
    s = load_settings()
    assert s.home == ctloop_home / ".ctloop"
    assert s.metadata_url == f"sqlite:///{ctloop_home / '.ctloop' / 'metadata.db'}"
    assert s.artifacts_url.startswith("file://") and s.runner == "local"


def test_toml_then_env_then_arguments(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        '[ctloop]\nrunner = "subprocess"\nmax_workers = 3\nhome = "state"\n'
    )
    sub = ctloop_home / "a" / "b"
    sub.mkdir(parents=True)
    s = load_settings(sub)  # found by walking up
    assert (s.runner, s.max_workers, s.home) == ("subprocess", 3, ctloop_home / "state")
    monkeypatch.setenv("CTLOOP_MAX_WORKERS", "5")
    assert load_settings().max_workers == 5
    assert load_settings(max_workers=7).max_workers == 7


def test_bad_settings_say_what_to_fix(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ctloop_home / "ctloop.toml").write_text("[ctloop\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()
    (ctloop_home / "ctloop.toml").write_text("[ctloop]\nmax_workers = 0\n")
    with pytest.raises(ConfigError, match=r"'max_workers' setting must be an int >= 1\. Got 0"):
        load_settings()
    monkeypatch.setenv("CTLOOP_MAX_WORKERS", "many")
    with pytest.raises(ConfigError, match="Got 'many'"):
        load_settings()


def test_error_one_line_and_json() -> None:
    err = NotFound("Run abc does not exist.\nCheck `ctloop runs list`.")
    assert err.one_line() == "not found: Run abc does not exist. Check `ctloop runs list`."
    assert err.to_json()["type"] == "NotFound" and err.http_status == 404
    assert isinstance(err, CtloopError)


def test_hashes(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc" * 1_000_000)
    assert hash_file(f) == hash_bytes(b"abc" * 1_000_000)
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})
    assert fingerprint(1) != fingerprint("1")


def test_public_api_is_sorted_and_complete() -> None:
    assert ctloop.__all__ == sorted(ctloop.__all__)
    for name in ctloop.__all__:
        assert hasattr(ctloop, name), name
