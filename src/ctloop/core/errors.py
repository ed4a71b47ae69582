"""The errors ctloop shows to people.

Every error meant for a person derives from :class:`CtloopError`. It carries a
``headline`` (what kind of problem), a message (what was wrong and what to do),
an HTTP status for the servers and an exit code for the CLI. The CLI prints
``headline: message`` on one line without a traceback; the servers answer with
the same text as JSON.

    CtloopError
    ├── ConfigError              settings, URLs, missing optional packages
    │   └── BackendUnavailable   a backend's extra is not installed / server unreachable
    ├── UserInputError           bad parameters, files, names given by a person
    │   ├── NotFound             a run, artifact, model, feature ... does not exist
    │   ├── NotTrainable         the data cannot train the declared task (one class, ...)
    │   └── PipelineDefinitionError  cycles, dangling inputs, bad signatures
    ├── IntegrityError           stored bytes or records are not what was recorded
    ├── ComponentFailed          user code raised inside a step
    ├── ValidationFailed         data did not pass its schema (error-level anomalies)
    └── StoreError               a backend failed in a way the user cannot fix by input
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ComponentFailed",
    "ConfigError",
    "CtloopError",
    "IntegrityError",
    "NotFound",
    "NotTrainable",
    "PipelineDefinitionError",
    "StoreError",
    "UserInputError",
    "ValidationFailed",
]


class CtloopError(Exception):
    """Root of all errors meant for a person."""

    headline = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        from ctloop.core.secrets import mask_secrets

        message = mask_secrets(message)  # no password or key ever reaches a person
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The text the CLI prints: headline and message on a single line."""
        return f"{self.headline}: {' '.join(self.message.split())}"

    def to_json(self) -> dict[str, str]:
        """The body the HTTP servers answer with."""
        return {"error": self.headline, "detail": self.message, "type": type(self).__name__}


class ConfigError(CtloopError):
    headline = "configuration error"
    http_status = 400
    exit_code = 2


class BackendUnavailable(ConfigError):
    headline = "backend unavailable"
    http_status = 503


class UserInputError(CtloopError):
    headline = "bad input"
    http_status = 400
    exit_code = 2


class NotFound(UserInputError):
    headline = "not found"
    http_status = 404


class NotTrainable(UserInputError):
    """The data cannot train the task: one class in the label, a class the task needs missing.

    The loop catches it at bootstrap and waits for a span it can train on, recording why.
    """

    headline = "cannot train"
    http_status = 422


class PipelineDefinitionError(UserInputError):
    headline = "invalid pipeline"
    http_status = 422


class IntegrityError(CtloopError):
    headline = "integrity error"
    http_status = 409
    exit_code = 3


class ComponentFailed(CtloopError):
    """User code raised inside a step; the original traceback is kept on ``traceback``."""

    headline = "step failed"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, step: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.traceback = traceback


class ValidationFailed(CtloopError):
    headline = "validation failed"
    http_status = 422
    exit_code = 1


class StoreError(CtloopError):
    headline = "store error"
    http_status = 503
    exit_code = 4
