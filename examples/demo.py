"""A scripted travel-planning agent, observed by nemo_relay and exported as ATOF events and an ATIF trajectory.

No network, no API keys: the "model" is a scripted function that answers in the OpenAI Chat Completions
format, and the tools are local functions. Run it with

    python examples/demo.py [output-directory]        # default: ./nemo-relay-demo

What it shows:

* the observability plugin configured in code (the same document a ``plugins.toml`` would hold), writing
  every lifecycle event to an ATOF JSON-lines file and each top-level agent run to an ATIF v1.7 trajectory;
* managed LLM calls through the built-in OpenAI Chat codec (the end events carry the decoded response: text,
  tool calls, token usage with cached tokens) and managed tool calls correlated by ``tool_call_id``;
* nested scopes, two tools running concurrently in isolated asyncio tasks, marks, a metric, and a failing
  step recorded with an ERROR status;
* a one-screen summary read back from the files alone.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import nemo_relay
from nemo_relay import (
    LLMRequest,
    LogSeverity,
    MetricKind,
    MetricMeasurement,
    MetricValueType,
    ScopeType,
    ToolExecutionResult,
    llm,
    plugin,
    scope,
    tools,
)
from nemo_relay.codecs import OpenAIChatCodec
from nemo_relay.observability import AtifConfig, AtofConfig, AtofFileSinkConfig, ComponentSpec, ObservabilityConfig

FLIGHTS = {"PAR": [{"flight": "AF1234", "price": 420}, {"flight": "LH880", "price": 385}]}
HOTELS = {"PAR": [{"hotel": "Hotel Lumiere", "price": 180}, {"hotel": "Le Petit Nid", "price": 95}]}
CODEC = OpenAIChatCodec()


# --- the scripted model ------------------------------------------------------------------------------------


def scripted_model(request: LLMRequest) -> dict[str, Any]:
    """Answers like an OpenAI-compatible endpoint: first asks for two tools, then writes the plan."""
    messages = request.content["messages"]
    if not any(message["role"] == "tool" for message in messages):
        return _completion(
            None,
            [
                _tool_call("call_flights", "search_flights", {"city": "PAR"}),
                _tool_call("call_hotels", "search_hotels", {"city": "PAR", "nights": 3}),
            ],
            usage=(812, 46, 512),
        )
    cheapest = json.loads(messages[-2]["content"])[0]
    hotel = json.loads(messages[-1]["content"])[-1]
    text = f"Fly {cheapest['flight']} ({cheapest['price']} EUR) and stay at {hotel['hotel']} for 3 nights."
    return _completion(text, None, usage=(1034, 31, 768))


def _tool_call(call_id: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def _completion(text: str | None, calls: list[dict[str, Any]] | None, usage: tuple[int, int, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    prompt, completion, cached = usage
    return {
        "id": f"chatcmpl-demo-{prompt}",
        "object": "chat.completion",
        "model": "scripted-model-1",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


# --- the tools -----------------------------------------------------------------------------------------------


async def search_flights(args: dict[str, Any]) -> ToolExecutionResult[Any]:
    await asyncio.sleep(0.01)
    offers = sorted(FLIGHTS.get(args["city"], []), key=lambda offer: offer["price"])
    scope.event("offers.found", data={"count": len(offers)})
    return ToolExecutionResult(offers)


async def search_hotels(args: dict[str, Any]) -> ToolExecutionResult[Any]:
    await asyncio.sleep(0.005)
    return ToolExecutionResult(HOTELS.get(args["city"], []), annotation={"source": "local-catalog"})


TOOLS = {"search_flights": search_flights, "search_hotels": search_hotels}


# --- the agent -------------------------------------------------------------------------------------------------


async def plan_trip(city: str, budget: int) -> str:
    metadata = {"session_id": "demo-session", "user_id": "demo-user"}
    with scope.scope("travel-planner", ScopeType.Agent, input={"city": city, "budget": budget}, metadata=metadata):
        scope.event("plan.started", data={"city": city}, severity=LogSeverity.Info)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You plan trips. Use the tools, then answer in one sentence."},
            {"role": "user", "content": f"Plan 3 nights in {city} under {budget} EUR."},
        ]
        request = LLMRequest({"content-type": "application/json"}, {"model": "scripted-model", "messages": messages})
        first = await llm.execute(
            "chat", request, scripted_model, model_name="scripted-model", codec=CODEC, response_codec=CODEC
        )
        calls = first["choices"][0]["message"]["tool_calls"]
        messages.append(first["choices"][0]["message"])

        async def run(call: dict[str, Any]) -> ToolExecutionResult[Any]:
            name, args = call["function"]["name"], json.loads(call["function"]["arguments"])
            return await tools.execute(name, args, TOOLS[name], tool_call_id=call["id"])

        # Both tools at once, each in its own task with an isolated stack continuing from the agent.
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(run(call), context=nemo_relay.fork_asyncio_context()) for call in calls]
        for call, result in zip(calls, await asyncio.gather(*tasks), strict=True):
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result.result)})

        with scope.scope("check-budget", ScopeType.Function, input={"budget": budget}):
            total = FLIGHTS[city][1]["price"] + HOTELS[city][1]["price"] * 3
            if total > budget:
                scope.event("over.budget", data={"total": total}, severity=LogSeverity.Warn)
        try:
            with scope.scope("book", ScopeType.Function, input={"total": total}):
                raise ConnectionError("booking service unavailable (scripted failure)")
        except ConnectionError:
            scope.event("booking.deferred", severity=LogSeverity.Error)

        request = LLMRequest({"content-type": "application/json"}, {"model": "scripted-model", "messages": messages})
        final = await llm.execute(
            "chat", request, scripted_model, model_name="scripted-model", codec=CODEC, response_codec=CODEC
        )
        scope.metric(
            "usage",
            [MetricMeasurement("demo.trip_cost", MetricKind.Gauge, MetricValueType.F64, float(total), unit="EUR")],
        )
        return str(final["choices"][0]["message"]["content"])


# --- configuration, run, summary ---------------------------------------------------------------------------


def observability(out: Path) -> plugin.PluginConfig:
    """The observability plugin writing ATOF events and ATIF trajectories into ``out``."""
    events = AtofFileSinkConfig(output_directory=str(out), filename="events.jsonl", mode="overwrite")
    return plugin.PluginConfig(
        components=[
            ComponentSpec(
                ObservabilityConfig(
                    atof=AtofConfig(enabled=True, sinks=[events]),
                    atif=AtifConfig(
                        enabled=True,
                        output_directory=str(out),
                        agent_name="travel-planner",
                        agent_version="1.0",
                        model_name="scripted-model",
                        filename_template="trajectory-{session_id}.json",
                    ),
                )
            )
        ]
    )


async def run(out: Path) -> str:
    async with plugin.plugin(observability(out)) as report:
        if report["diagnostics"]:
            print(f"configuration diagnostics: {report['diagnostics']}")
        return await plan_trip("PAR", budget=700)  # files are complete when the plugin is cleared on exit


def summary(out: Path) -> list[str]:
    """What the files say, read back without any help from the runtime."""
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    trajectories = sorted(out.glob("trajectory-*.json"))
    trajectory = json.loads(trajectories[0].read_text())
    steps = trajectory["steps"]
    totals = trajectory["final_metrics"]
    agent = next(e for e in events if e["kind"] == "scope" and e["category"] == "agent")
    end = next(e for e in events if e["uuid"] == agent["uuid"] and e.get("scope_category") == "end")
    seconds = (datetime.fromisoformat(end["timestamp"]) - datetime.fromisoformat(agent["timestamp"])).total_seconds()
    kinds = Counter(e.get("category") or e["kind"] for e in events if e.get("scope_category") != "end")
    failed = [e["name"] for e in events if (e.get("metadata") or {}).get("otel.status_code") == "ERROR"]
    tool_calls = [call["function_name"] for step in steps for call in step.get("tool_calls", [])]
    observations = sum(len(step.get("observation", {}).get("results", [])) for step in steps)
    lines = [
        f"ATOF events   {out / 'events.jsonl'}",
        f"ATIF run      {trajectories[0]}",
        "",
        f"events        {len(events)} ({', '.join(f'{count} {kind}' for kind, count in sorted(kinds.items()))})",
        f"duration      {seconds * 1000:.1f} ms (agent scope start to end)",
        f"steps         {totals['total_steps']}: " + ", ".join(f"{s['step_id']} {s['source']}" for s in steps),
        f"tool calls    {len(tool_calls)} ({', '.join(tool_calls)}), {observations} observations",
        f"tokens        prompt {totals.get('total_prompt_tokens', 0)} (cached {totals.get('total_cached_tokens', 0)}),"
        f" completion {totals.get('total_completion_tokens', 0)}",
        f"errors        {', '.join(failed) or 'none'}",
    ]
    for step in steps:
        message = step["message"] if isinstance(step["message"], str) else json.dumps(step["message"])
        if message:
            lines.append(f"  step {step['step_id']} {step['source']:<6} {message[:90]}")
    return lines


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "nemo-relay-demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trajectory-*.json"):
        old.unlink()  # one run per folder, so the summary reads this run's trajectory
    answer = asyncio.run(run(out))
    print("nemo_relay demo: a scripted travel-planning agent\n")
    print(f"answer        {answer}")
    print("\n".join(summary(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
