"""Global intercepts: request intercepts rewrite a call's input; execution intercepts wrap the call.

Lower priorities run first; for execution intercepts the lowest priority is the outermost wrapper.
An execution intercept receives ``next``, which it may await zero, one or many times while it runs;
each ``next`` call runs the rest of the chain on an isolated snapshot of the scope stack.
"""

from __future__ import annotations

from nemo_relay._core import registrars as _r
from nemo_relay._core import registry as _f

TYPE_CHECKING = False  # `typing` costs milliseconds at import; the aliases are built on first use
if TYPE_CHECKING:
    from nemo_relay._core.aliases import (
        LlmExecutionIntercept,
        LlmRequestIntercept,
        LlmStreamExecutionIntercept,
        ToolExecutionIntercept,
        ToolRequestIntercept,
    )

__all__ = [
    "LlmExecutionIntercept",
    "LlmRequestIntercept",
    "LlmStreamExecutionIntercept",
    "ToolExecutionIntercept",
    "ToolRequestIntercept",
    "deregister_llm_execution",
    "deregister_llm_request",
    "deregister_llm_stream_execution",
    "deregister_tool_execution",
    "deregister_tool_request",
    "register_llm_execution",
    "register_llm_request",
    "register_llm_stream_execution",
    "register_tool_execution",
    "register_tool_request",
]


def __getattr__(name: str) -> object:
    if name in __all__ and name[0].isupper():
        from nemo_relay._core import aliases

        return getattr(aliases, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_tool_request(name: str, priority: int, break_chain: bool, fn: ToolRequestIntercept) -> None:
    """Rewrite tool arguments: ``fn(tool_name, args)`` returns the JSON arguments for the next stage.

    With ``break_chain=True`` no lower-ranked request intercept runs after this one.

    Raises:
        RuntimeError: ``already exists: <name> already exists``.
    """
    _r.register(_f.TOOL_REQUEST_INTERCEPT, name, priority, fn, break_chain)


def deregister_tool_request(name: str) -> bool:
    """Remove a tool request intercept; False if none had that name."""
    return _r.deregister(_f.TOOL_REQUEST_INTERCEPT, name)


def register_tool_execution(name: str, priority: int, fn: ToolExecutionIntercept) -> None:
    """Wrap tool execution: ``fn(tool_name, args, next)`` returns a ``ToolExecutionInterceptOutcome``.

    ``await next(args)`` gives the downstream ``ToolExecutionResult``; copy its ``annotation`` into the
    outcome to keep it. ``next`` stops working once ``fn`` has returned.
    """
    _r.register(_f.TOOL_EXECUTION_INTERCEPT, name, priority, fn)


def deregister_tool_execution(name: str) -> bool:
    """Remove a tool execution intercept; False if none had that name."""
    return _r.deregister(_f.TOOL_EXECUTION_INTERCEPT, name)


def register_llm_request(name: str, priority: int, break_chain: bool, fn: LlmRequestIntercept) -> None:
    """Rewrite LLM requests: ``fn(name, request, annotated_request)`` returns an ``LLMRequestInterceptOutcome``.

    With a codec active, edit the annotated request (the body authority) and keep ``request.content``.
    """
    _r.register(_f.LLM_REQUEST_INTERCEPT, name, priority, fn, break_chain)


def deregister_llm_request(name: str) -> bool:
    """Remove an LLM request intercept; False if none had that name."""
    return _r.deregister(_f.LLM_REQUEST_INTERCEPT, name)


def register_llm_execution(name: str, priority: int, fn: LlmExecutionIntercept) -> None:
    """Wrap a buffered LLM call: ``fn(name, request, next)`` returns the JSON response (or awaits ``next``)."""
    _r.register(_f.LLM_EXECUTION_INTERCEPT, name, priority, fn)


def deregister_llm_execution(name: str) -> bool:
    """Remove an LLM execution intercept; False if none had that name."""
    return _r.deregister(_f.LLM_EXECUTION_INTERCEPT, name)


def register_llm_stream_execution(name: str, priority: int, fn: LlmStreamExecutionIntercept) -> None:
    """Wrap a streamed LLM call: ``fn(request, next)`` returns an async iterator of chunks.

    ``await next(request)`` gives the downstream iterator; ``next`` stays usable until the stream closes.
    """
    _r.register(_f.LLM_STREAM_EXECUTION_INTERCEPT, name, priority, fn)


def deregister_llm_stream_execution(name: str) -> bool:
    """Remove an LLM stream execution intercept; False if none had that name."""
    return _r.deregister(_f.LLM_STREAM_EXECUTION_INTERCEPT, name)
