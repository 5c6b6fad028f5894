"""Shared pieces of observability config validation: the diagnostic collector and header checks."""

from __future__ import annotations

import os

from nemo_relay._core.observability.config_serde import debug_str

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Reporter", "env_value", "header_name_valid", "header_value_valid"]

UNKNOWN_FIELD = "observability.unknown_field"
UNSUPPORTED_VALUE = "observability.unsupported_value"
INVALID_OTEL_ENDPOINT = "observability.invalid_otel_endpoint"
_LEVELS = {"ignore": None, "warn": "warning", "error": "error"}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Reporter:
    """Collects ``ConfigDiagnostic`` dicts in order; policy-governed codes take their level from ``policy``."""

    __slots__ = ("diagnostics", "policy")

    def __init__(self, policy: dict[str, str]) -> None:
        self.diagnostics: list[dict[str, Any]] = []
        self.policy = policy

    def add(self, level: str | None, code: str, message: str, component: str | None, field: str | None) -> None:
        """Record one diagnostic (nothing when ``level`` is None, i.e. the policy says ignore)."""
        if level is None:
            return
        diag: dict[str, Any] = {"code": code}
        if component is not None:
            diag["component"] = component
        if field is not None:
            diag["field"] = field
        diag["level"] = level
        diag["message"] = message
        self.diagnostics.append(diag)

    def error(self, code: str, component: str | None, field: str | None, message: str) -> None:
        """A hard error, whatever the policy."""
        self.add("error", code, message, component, field)

    def warning(self, code: str, component: str | None, field: str | None, message: str) -> None:
        """A warning, whatever the policy."""
        self.add("warning", code, message, component, field)

    def unknown(self, component: str, field: str, message: str | None = None) -> None:
        """An unrecognised key, at the ``unknown_field`` policy level."""
        text = message if message is not None else f"field '{field}' is not recognized for '{component}'"
        self.add(_LEVELS.get(self.policy.get("unknown_field", "warn")), UNKNOWN_FIELD, text, component, field)

    def unsupported(
        self, component: str | None, field: str | None, message: str, code: str = UNSUPPORTED_VALUE
    ) -> None:
        """A known key with a value we cannot honour, at the ``unsupported_value`` policy level."""
        self.add(_LEVELS.get(self.policy.get("unsupported_value", "error")), code, message, component, field)

    @property
    def has_errors(self) -> bool:
        """Whether any error-level diagnostic was recorded."""
        return any(diag["level"] == "error" for diag in self.diagnostics)


def header_name_valid(name: str) -> bool:
    """Whether ``name`` is an HTTP header name (a non-empty token; case does not matter)."""
    return bool(name) and all(char in _TOKEN for char in name)


def header_value_valid(value: str) -> bool:
    """Whether ``value`` is a valid HTTP header value (no control characters except tab)."""
    return all(char == "\t" or (char >= " " and char != "\x7f") for char in value)


def env_value(name: str) -> str | None:
    """The environment variable ``name``, or None when it is unset (or cannot name a variable)."""
    if not name or "=" in name or "\0" in name:
        return None
    return os.environ.get(name)


def stream_header_checks(
    report: Reporter, component: str, prefix: str, headers: dict[str, str], header_env: dict[str, str]
) -> None:
    """ATOF stream sink header rules: valid names/values, env-var names set and non-blank, no overlaps."""
    for name, value in headers.items():
        field = f"{prefix}.headers.{name}"
        if not header_name_valid(name):
            report.unsupported(component, field, f"ATOF {field} header name '{name}' is invalid")
        if not header_value_valid(value):
            report.unsupported(component, field, f"ATOF {field} value is invalid: failed to parse header value")
    static = {name.lower() for name in headers}
    for name, variable in header_env.items():
        field = f"{prefix}.header_env.{name}"
        if not header_name_valid(name):
            report.unsupported(component, field, f"ATOF {field} header name '{name}' is invalid")
        if name.lower() in static:
            message = f"ATOF {prefix} header {debug_str(name)} cannot appear in both headers and header_env"
            report.unsupported(component, field, message)
        if not variable.strip():
            report.unsupported(component, field, f"ATOF {field} must name a non-empty environment variable")
        elif variable != variable.strip():
            message = f"ATOF {field} must not have surrounding whitespace; got '{variable}'"
            report.unsupported(component, field, message)
        else:
            current = env_value(variable)
            if current is None:
                message = (
                    f"ATOF {field} references an environment variable that is not set: environment variable not found"
                )
                report.unsupported(component, field, message)
            elif not current.strip():
                report.unsupported(component, field, f"ATOF {field} references an environment variable that is blank")


def atif_env_var_checks(report: Reporter, field: str, variable: str) -> None:
    """ATIF credential/header variable rules: a trimmed, non-empty name of a set, non-empty variable."""
    if not variable.strip():
        report.unsupported("atif", field, f"ATIF {field} must be the name of an environment variable, not empty")
    elif variable != variable.strip():
        report.unsupported("atif", field, f"ATIF {field} must not have surrounding whitespace; got '{variable}'")
    else:
        value = env_value(variable)
        if value is None:
            report.unsupported(
                "atif", field, f"ATIF {field}='{variable}' references an environment variable that is not set"
            )
        elif value == "":
            report.unsupported(
                "atif", field, f"ATIF {field}='{variable}' references an environment variable that is set but empty"
            )
