"""Discovery of global registrations, and conditional middleware guardrails that switch them off.

A conditional middleware guardrail (a *gate*) is asked, each time a call or event takes its snapshot
of global registrations, whether the registration it targets should be left out. Gates fail open and
never affect scope-local registrations.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from nemo_relay._core import args as _args
from nemo_relay._core import registry as _registry
from nemo_relay._core.plugins import names as _plugin_names

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ConditionalMiddlewareGuardrail",
    "RuntimeRegistrationIdentity",
    "RuntimeRegistrationKind",
    "RuntimeRegistrationOwner",
    "RuntimeRegistrationOwnerKind",
    "deregister_conditional_middleware_guardrail",
    "list_runtime_registrations",
    "register_conditional_middleware_guardrail",
]


class RuntimeRegistrationKind(enum.StrEnum):
    """The registration families, in the runtime's declaration order."""

    SUBSCRIBER = "subscriber"
    EVENT_METADATA_INJECTOR = "event_metadata_injector"
    MARK_SANITIZE_GUARDRAIL = "mark_sanitize_guardrail"
    SCOPE_SANITIZE_START_GUARDRAIL = "scope_sanitize_start_guardrail"
    SCOPE_SANITIZE_END_GUARDRAIL = "scope_sanitize_end_guardrail"
    TOOL_SANITIZE_REQUEST_GUARDRAIL = "tool_sanitize_request_guardrail"
    TOOL_SANITIZE_RESPONSE_GUARDRAIL = "tool_sanitize_response_guardrail"
    TOOL_CONDITIONAL_EXECUTION_GUARDRAIL = "tool_conditional_execution_guardrail"
    TOOL_REQUEST_INTERCEPT = "tool_request_intercept"
    TOOL_EXECUTION_INTERCEPT = "tool_execution_intercept"
    LLM_SANITIZE_REQUEST_GUARDRAIL = "llm_sanitize_request_guardrail"
    LLM_SANITIZE_RESPONSE_GUARDRAIL = "llm_sanitize_response_guardrail"
    LLM_CONDITIONAL_EXECUTION_GUARDRAIL = "llm_conditional_execution_guardrail"
    LLM_REQUEST_INTERCEPT = "llm_request_intercept"
    LLM_EXECUTION_INTERCEPT = "llm_execution_intercept"
    LLM_STREAM_EXECUTION_INTERCEPT = "llm_stream_execution_intercept"


class RuntimeRegistrationOwnerKind(enum.StrEnum):
    """Who made a registration."""

    CORE = "core"
    GLOBAL_API = "global_api"
    PLUGIN = "plugin"


@dataclass(frozen=True)
class RuntimeRegistrationOwner:
    """The owner of a registration: the global API, the core, or a plugin component."""

    kind: RuntimeRegistrationOwnerKind
    plugin_kind: str | None
    component_ordinal: int | None


@dataclass(frozen=True)
class RuntimeRegistrationIdentity:
    """One global registration: its family, the name it was given, its effective name and its owner."""

    kind: RuntimeRegistrationKind
    local_name: str
    effective_name: str
    owner: RuntimeRegistrationOwner


ConditionalMiddlewareGuardrail = Callable[[set[RuntimeRegistrationKind], str], str | None]
"""``guardrail(kinds, effective_name)`` returns a reason to switch the registration off, or None."""

_GLOBAL_API = RuntimeRegistrationOwner(RuntimeRegistrationOwnerKind.GLOBAL_API, None, None)
_KINDS = tuple(RuntimeRegistrationKind)


def _families(kinds: object, argument: str) -> set[int]:
    if isinstance(kinds, (str, bytes)) or not hasattr(kinds, "__iter__"):
        raise TypeError(f"argument '{argument}': expected a set of RuntimeRegistrationKind, got {type(kinds).__name__}")
    families: set[int] = set()
    for kind in kinds:
        try:
            families.add(_registry.FAMILY_KINDS.index(str(RuntimeRegistrationKind(kind))))
        except ValueError:
            raise ValueError(f"unknown runtime registration kind: {kind}") from None
    return families


def list_runtime_registrations(
    kinds: Iterable[RuntimeRegistrationKind] | None = None,
) -> list[RuntimeRegistrationIdentity]:
    """Every global registration (gated ones included), sorted by family order then effective name.

    Registrations made through a plugin component's context are owned by that plugin (kind and
    component ordinal) and listed under their local name. Scope-local registrations are never listed.

    Raises:
        ValueError: ``unknown runtime registration kind: <kind>``.
    """
    families = None if kinds is None else _families(kinds, "kinds")
    return [_identity(_KINDS[family], entry.name) for family, entry in _registry.global_registrations(families)]


def _identity(kind: RuntimeRegistrationKind, effective_name: str) -> RuntimeRegistrationIdentity:
    # Plugin components register under `nemo-relay-plugin.v1.<kind>:<ordinal>:<local name>`.
    parsed = _plugin_names.parse(effective_name)
    if parsed is None:
        return RuntimeRegistrationIdentity(kind, effective_name, effective_name, _GLOBAL_API)
    plugin_kind, ordinal, local_name = parsed
    owner = RuntimeRegistrationOwner(RuntimeRegistrationOwnerKind.PLUGIN, plugin_kind, ordinal)
    return RuntimeRegistrationIdentity(kind, local_name, effective_name, owner)


def register_conditional_middleware_guardrail(
    name: str,
    kinds: set[RuntimeRegistrationKind],
    registration_name: str,
    guardrail: Callable[[set[RuntimeRegistrationKind], str], str | None],
) -> None:
    """Switch the global registration ``registration_name`` of ``kinds`` off while ``guardrail`` says so.

    ``guardrail(kinds, effective_name)`` runs whenever a snapshot of matching global registrations is
    taken; a non-None reason leaves the registration out of that snapshot. A raising guardrail is
    reported and treated as None.

    Raises:
        RuntimeError: ``already exists: <name> conditional middleware guardrail already exists``.
    """
    name = _args.text(name, "name")
    target = _args.text(registration_name, "registration_name")
    families = tuple(sorted(_families(kinds, "kinds")))
    _args.function(guardrail, "guardrail")
    public_kinds = {_KINDS[family] for family in families}
    _registry.add_gate(_registry.Gate(name, families, public_kinds, target, guardrail))


def deregister_conditional_middleware_guardrail(name: str) -> bool:
    """Remove a conditional middleware guardrail; False if none had that name."""
    return _registry.remove_gate(_args.text(name, "name"))
