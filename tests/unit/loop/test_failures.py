"""Whose fault a failed step is, read off its traceback, whatever its message holds."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from ctloop.core.errors import NotTrainable, ValidationFailed
from ctloop.loop.failures import infrastructure_failure, raised
from ctloop.loop.phases import not_trainable


@dataclass
class Step:
    error: str | None
    traceback: str | None


def _failed(exc: Exception) -> Step:
    try:
        try:
            raise KeyError("an earlier error")
        except KeyError:
            raise exc from None
    except Exception as caught:
        return Step(str(caught), traceback.format_exc())


def test_a_multi_line_validation_failure_is_the_data_s_fault() -> None:
    step = _failed(ValidationFailed("week-05 does not fit its schema: 3 error(s)\n"
                                    "[error] spend: required column 'spend' is missing\n"
                                    "[error] plan: value 'enterprise-trial' not in domain"))
    assert raised(step.traceback) == ("ctloop.core.errors.ValidationFailed",
                                      "week-05 does not fit its schema: 3 error(s)")
    assert infrastructure_failure([step], None) is None


def test_anything_else_is_the_infrastructure_s() -> None:
    step = _failed(FileNotFoundError("/mnt/landing/week-05.parquet"))
    assert infrastructure_failure([step], None) == "/mnt/landing/week-05.parquet"
    assert infrastructure_failure([], "scheduler lost") == "scheduler lost"


def test_not_trainable_is_read_off_the_traceback() -> None:
    step = _failed(NotTrainable("The label 'y' has one class (0)\nin the window."))
    assert not_trainable(step.traceback, None) == "The label 'y' has one class (0)"
    assert not_trainable(step.traceback, step.error) == ("The label 'y' has one class (0) "
                                                         "in the window.")
    assert not_trainable(_failed(ValueError("x")).traceback, "x") is None
    assert not_trainable(None, None) is None
