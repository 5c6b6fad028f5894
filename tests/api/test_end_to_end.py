"""One realistic agent run through the whole managed pipeline, checked event by event.

The run: an agent scope with a nested planning scope; a tool call rejected by a conditional guardrail;
a flaky tool retried once by an execution intercept; an LLM request rewritten by a request intercept;
a streamed LLM call abandoned half-way; request and response sanitizers on both tools and LLM calls.
The subscriber must receive exactly the expected ordered stream, with sanitized payloads, while the
real tool and provider callbacks saw the rewritten but unsanitized values.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nemo_relay import (
    LLMRequest,
    LLMRequestInterceptOutcome,
    PendingMarkSpec,
    ScopeType,
    ToolExecutionInterceptOutcome,
    ToolExecutionResult,
    guardrails,
    intercepts,
    llm,
    scope,
    subscribers,
    tools,
)

SECRET_SSN = "123-45-6789"


def _install_policy(seen: dict[str, list[Any]]) -> None:
    def no_deletes(tool_name: str, args: Any) -> str | None:
        return "deleting accounts needs a human" if tool_name.startswith("delete_") else None

    def redact_args(tool_name: str, args: Any) -> Any:
        return {**args, "ssn": "[redacted]"} if isinstance(args, dict) and "ssn" in args else args

    def redact_result(tool_name: str, result: Any) -> Any:
        return {**result, "email": "[redacted]"} if isinstance(result, dict) and "email" in result else result

    async def retry_once(tool_name: str, args: Any, next_call: Any) -> ToolExecutionInterceptOutcome:
        try:
            downstream = await next_call(args)
            retried = False
        except RuntimeError:
            downstream = await next_call(args)
            retried = True
        marks = [PendingMarkSpec("tool.retry", data={"retried": retried})]
        return ToolExecutionInterceptOutcome(downstream.result, marks, annotation=downstream.annotation)

    def add_policy_prompt(name: str, request: LLMRequest, annotated: Any) -> LLMRequestInterceptOutcome:
        content = request.content
        content["messages"] = [{"role": "system", "content": "Be brief."}, *content["messages"]]
        return LLMRequestInterceptOutcome(LLMRequest({**request.headers, "x-policy": "brief"}, content))

    def hide_prompts(request: LLMRequest, context: Any) -> LLMRequest:
        seen["llm_sanitizer_contexts"].append(context.codec.kind)
        content = request.content
        content["messages"] = f"[{len(content['messages'])} messages hidden]"
        return LLMRequest(request.headers, content)

    def hide_answer(response: Any, context: Any) -> Any:
        if isinstance(response, dict) and "answer" in response:
            return {"answer_chars": len(response["answer"])}
        return response

    guardrails.register_tool_conditional_execution("no-deletes", 0, no_deletes)
    guardrails.register_tool_sanitize_request("redact-ssn", 0, redact_args)
    guardrails.register_tool_sanitize_response("redact-email", 0, redact_result)
    intercepts.register_tool_execution("retry-once", 0, retry_once)
    intercepts.register_llm_request("policy-prompt", 0, False, add_policy_prompt)
    guardrails.register_llm_sanitize_request("hide-prompts", 0, hide_prompts)
    guardrails.register_llm_sanitize_response("hide-answer", 0, hide_answer)


async def _agent_run(seen: dict[str, list[Any]]) -> dict[str, Any]:
    attempts = {"lookup": 0}

    def lookup_customer(args: Any) -> ToolExecutionResult[Any]:
        seen["tool_args"].append(copy.deepcopy(args))
        attempts["lookup"] += 1
        if attempts["lookup"] == 1:
            raise ConnectionError("CRM timeout")
        return ToolExecutionResult({"id": args["id"], "email": "ada@example.com"}, annotation={"source": "crm"})

    async def provider(request: LLMRequest) -> Any:
        seen["provider_requests"].append({"headers": request.headers, "content": request.content})
        return {"answer": "Your account is active."}

    async def streaming_provider(request: LLMRequest) -> Any:
        for index in range(5):
            yield {"delta": f"part{index}"}

    collected: list[Any] = []
    outcome: dict[str, Any] = {}
    with (
        scope.scope("support-agent", ScopeType.Agent, input={"ticket": 42}) as agent,
        scope.scope("plan", ScopeType.Function) as plan,
    ):
        outcome["agent"], outcome["plan"] = agent.uuid, plan.uuid
        with pytest.raises(RuntimeError, match="guardrail rejected: deleting accounts needs a human"):
            await tools.execute("delete_account", {"id": 7}, lookup_customer, tool_call_id="call-1")
        result = await tools.execute(
            "lookup_customer", {"id": 7, "ssn": SECRET_SSN}, lookup_customer, tool_call_id="call-2"
        )
        outcome["tool_result"] = (result.result, result.annotation)
        request = LLMRequest(
            {"Authorization": "Bearer sk-secret", "content-type": "application/json"},
            {"model": "demo-model", "messages": [{"role": "user", "content": "Is my account active?"}]},
        )
        outcome["answer"] = await llm.execute("answer", request, provider, model_name="demo-model")
        stream = await llm.stream_execute(
            "summarize", request, streaming_provider, collected.append, lambda: {"partial": list(collected)}
        )
        async for chunk in stream:
            if chunk["delta"] == "part1":
                break
        await stream.aclose()
    outcome["collected"] = collected
    return outcome


@pytest.mark.timeout(30)
async def test_realistic_agent_run_produces_the_exact_event_stream() -> None:
    seen: dict[str, list[Any]] = {"tool_args": [], "provider_requests": [], "llm_sanitizer_contexts": []}
    received: list[Any] = []
    subscribers.register("e2e-recorder", received.append)
    _install_policy(seen)

    outcome = await _agent_run(seen)
    assert await subscribers.flush_async(timeout=10)

    stream = [(getattr(e, "scope_category", "mark"), e.category, e.name) for e in received]
    assert stream == [
        ("start", "agent", "support-agent"),
        ("start", "function", "plan"),
        # rejected tool: the guardrail evaluation, then the rejection mark; no tool lifecycle
        ("start", "guardrail", "no-deletes"),
        ("end", "guardrail", "no-deletes"),
        ("mark", None, "delete_account"),
        # flaky tool: guardrail allows, one tool lifecycle around both attempts, then the retry mark
        ("start", "guardrail", "no-deletes"),
        ("end", "guardrail", "no-deletes"),
        ("start", "tool", "lookup_customer"),
        ("end", "tool", "lookup_customer"),
        ("mark", None, "tool.retry"),
        # buffered LLM call
        ("start", "llm", "answer"),
        ("end", "llm", "answer"),
        # streamed LLM call abandoned after two chunks
        ("start", "llm", "summarize"),
        ("mark", None, "llm.chunk"),
        ("mark", None, "llm.chunk"),
        ("end", "llm", "summarize"),
        ("end", "function", "plan"),
        ("end", "agent", "support-agent"),
    ]
    by_position = dict(enumerate(received))

    # Parentage: everything of the run sits under the plan scope; marks under their call.
    for index in range(2, 16):
        event = by_position[index]
        if event.name in ("tool.retry",):
            assert event.parent_uuid == by_position[7].uuid
        elif event.name == "llm.chunk":
            assert event.parent_uuid == by_position[12].uuid
        else:
            assert event.parent_uuid == outcome["plan"], event.name
    assert by_position[1].parent_uuid == outcome["agent"]

    # The rejection.
    assert by_position[3].data == {
        "allowed": False,
        "rejected": True,
        "rejection_reason": "deleting accounts needs a human",
    }
    assert by_position[4].data == {"rejected": True, "rejection_reason": "deleting accounts needs a human"}
    assert by_position[4].category_profile is None

    # The retried tool: sanitized payloads in events, raw values for the callback and the caller.
    tool_start, tool_end, retry_mark = by_position[7], by_position[8], by_position[9]
    assert tool_start.uuid == tool_end.uuid
    assert tool_start.data == {"id": 7, "ssn": "[redacted]"}
    assert tool_start.category_profile == {"tool_call_id": "call-2"}
    assert tool_end.data == {"id": 7, "email": "[redacted]"}
    assert tool_end.category_profile == {"tool_call_id": "call-2", "tool_result_annotation": {"source": "crm"}}
    assert tool_end.metadata == {"otel.status_code": "OK"}
    assert retry_mark.data == {"retried": True}
    assert seen["tool_args"] == [{"id": 7, "ssn": SECRET_SSN}, {"id": 7, "ssn": SECRET_SSN}]
    assert outcome["tool_result"] == ({"id": 7, "email": "ada@example.com"}, {"source": "crm"})

    # The rewritten LLM request: the provider saw the rewrite (and the credential), events did not.
    llm_start, llm_end = by_position[10], by_position[11]
    (provider_request,) = seen["provider_requests"]
    assert provider_request["content"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Is my account active?"},
    ]
    assert provider_request["headers"]["x-policy"] == "brief"
    assert provider_request["headers"]["Authorization"] == "Bearer sk-secret"
    assert provider_request["headers"]["traceparent"].endswith(llm_start.uuid.replace("-", "")[-16:] + "-01")
    assert llm_start.data == {
        "headers": {"content-type": "application/json", "x-policy": "brief", "x-dynamo-session-id": "support-agent"},
        "content": {"model": "demo-model", "messages": "[2 messages hidden]"},
    }
    assert llm_start.category_profile == {"model_name": "demo-model"}
    assert llm_end.data == {"answer_chars": len("Your account is active.")}
    assert outcome["answer"] == {"answer": "Your account is active."}

    # The abandoned stream: two chunks, then one end with the partial output and a clear status.
    chunks = [by_position[13], by_position[14]]
    assert [chunk.data["chunk_index"] for chunk in chunks] == [0, 1]
    stream_end = by_position[15]
    assert stream_end.data == {"partial": [{"delta": "part0"}, {"delta": "part1"}]}
    assert stream_end.metadata == {
        "otel.status_code": "ERROR",
        "otel.status_description": "stream dropped before clean completion",
    }
    assert outcome["collected"] == [{"delta": "part0"}, {"delta": "part1"}]

    # Scope ends close with OK and their inputs stay on the starts.
    assert by_position[0].data == {"ticket": 42}
    assert by_position[17].metadata == {"otel.status_code": "OK"}
    assert seen["llm_sanitizer_contexts"] == ["none", "none"]  # the buffered and the streamed call
