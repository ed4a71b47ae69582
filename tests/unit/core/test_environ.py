"""Variables set for a block come back as they were, unset ones unset, even on error."""

from __future__ import annotations

import os

import pytest

from ctloop.core.environ import environment


def test_a_block_sets_and_unsets_and_everything_comes_back(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("CTLOOP_T_KEPT", "before")
    monkeypatch.setenv("CTLOOP_T_GONE", "there")
    monkeypatch.delenv("CTLOOP_T_NEW", raising=False)
    monkeypatch.setenv("CTLOOP_T_OTHER", "untouched")
    with environment({"CTLOOP_T_KEPT": "during", "CTLOOP_T_NEW": "new",
                      "CTLOOP_T_GONE": None}):
        assert os.environ["CTLOOP_T_KEPT"] == "during"
        assert os.environ["CTLOOP_T_NEW"] == "new"
        assert "CTLOOP_T_GONE" not in os.environ
        os.environ["CTLOOP_T_OTHER"] = "changed inside"
    assert os.environ["CTLOOP_T_KEPT"] == "before"
    assert "CTLOOP_T_NEW" not in os.environ
    assert os.environ["CTLOOP_T_GONE"] == "there"
    assert os.environ["CTLOOP_T_OTHER"] == "changed inside"  # not ours to put back


def test_the_block_raising_still_puts_them_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CTLOOP_T_NEW", raising=False)
    with pytest.raises(RuntimeError), environment({"CTLOOP_T_NEW": "x"}):
        raise RuntimeError("boom")
    assert "CTLOOP_T_NEW" not in os.environ
