"""A scripted travel-planning agent, instrumented with nemo_relay and printed as an event tree.

No network, no API keys: the "tools" are local functions. Run it with

    python examples/demo.py

It shows an agent scope with nested function scopes, two searches running concurrently in isolated
asyncio tasks (``fork_asyncio_context``), marks with severities and payloads, a metric, and a failing
step that is recorded with an ERROR status. Every event reaches a subscriber on the dispatcher thread;
the tree below is rebuilt from those events alone.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from datetime import datetime

import nemo_relay
from nemo_relay import LogSeverity, MetricKind, MetricMeasurement, MetricValueType, ScopeType, scope, subscribers

FLIGHTS = {"PAR": [("AF1234", 420), ("LH880", 385)], "TYO": [("JL44", 910)]}
HOTELS = {"PAR": [("Hotel Lumiere", 180), ("Le Petit Nid", 95)], "TYO": [("Sakura Inn", 140)]}


async def search_flights(city: str) -> list[tuple[str, int]]:
    with scope.scope("search_flights", ScopeType.Tool, input={"city": city}) as handle:
        await asyncio.sleep(0.01)
        offers = FLIGHTS.get(city, [])
        scope.event("offers.found", handle=handle, data={"count": len(offers)})
        return offers


async def search_hotels(city: str) -> list[tuple[str, int]]:
    with scope.scope("search_hotels", ScopeType.Retriever, input={"city": city}):
        await asyncio.sleep(0.005)
        return HOTELS.get(city, [])


async def plan_trip(city: str, budget: int) -> dict[str, object]:
    with scope.scope("travel-planner", ScopeType.Agent, input={"city": city, "budget": budget}):
        scope.event("plan.started", data={"city": city}, severity=LogSeverity.Info)

        # Two searches at once, each in its own task with an isolated stack continuing from the agent.
        loop = asyncio.get_running_loop()
        flights_task = loop.create_task(search_flights(city), context=nemo_relay.fork_asyncio_context())
        hotels_task = loop.create_task(search_hotels(city), context=nemo_relay.fork_asyncio_context())
        flights, hotels = await asyncio.gather(flights_task, hotels_task)

        with scope.scope("choose", ScopeType.Function, input={"budget": budget}):
            flight = min(flights, key=lambda offer: offer[1])
            hotel = min(hotels, key=lambda offer: offer[1])
            total = flight[1] + hotel[1] * 3
            if total > budget:
                scope.event("over.budget", data={"total": total}, severity=LogSeverity.Warn)

        try:
            with scope.scope("book", ScopeType.Function, input={"flight": flight[0]}):
                raise ConnectionError("booking service unavailable (scripted failure)")
        except ConnectionError:
            scope.event("booking.deferred", severity=LogSeverity.Error)

        scope.metric(
            "usage",
            [
                MetricMeasurement("demo.tool_calls", MetricKind.Counter, MetricValueType.U64, 2, unit="{call}"),
                MetricMeasurement("demo.trip_cost", MetricKind.Gauge, MetricValueType.F64, float(total), unit="EUR"),
            ],
        )
        return {"flight": flight[0], "hotel": hotel[0], "total": total}


def render(events: list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent]) -> str:
    """Rebuild the scope tree from delivered events only."""
    starts: dict[str, nemo_relay.ScopeEvent] = {}
    ends: dict[str, nemo_relay.ScopeEvent] = {}
    children: dict[str | None, list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent]] = defaultdict(list)
    for event in events:
        if isinstance(event, nemo_relay.ScopeEvent):
            if event.scope_category == "start":
                starts[event.uuid] = event
                children[event.parent_uuid].append(event)
            else:
                ends[event.uuid] = event
        else:
            children[event.parent_uuid].append(event)

    roots = [parent for parent in children if parent not in starts]

    def describe(mark: nemo_relay.MarkEvent) -> str:
        if mark.data_schema and mark.data_schema["name"] == "nemo.relay.metric_measurements":
            measurements = mark.data["measurements"]  # type: ignore[call-overload,index]
            return ", ".join(f"{m['name']}={m['value']} {m['unit'] or ''}".rstrip() for m in measurements)
        return "" if mark.data is None else str(mark.data)

    lines: list[str] = []

    def when(event: nemo_relay.ScopeEvent | nemo_relay.MarkEvent) -> datetime:
        return datetime.fromisoformat(event.timestamp)

    def walk(parent: str | None, depth: int) -> None:
        for child in sorted(children.get(parent, []), key=when):
            pad = "  " * depth
            if isinstance(child, nemo_relay.ScopeEvent):
                end = ends.get(child.uuid)
                millis = (when(end) - when(child)).total_seconds() * 1000 if end else float("nan")
                status = (end.metadata or {}).get("otel.status_code", "-") if end else "open"  # type: ignore[union-attr]
                lines.append(f"{pad}▸ {child.category:<9} {child.name:<16} {millis:7.2f} ms  {status}")
                if child.data is not None:
                    lines.append(f"{pad}    input  {child.data}")
                if end is not None and isinstance(end.metadata, dict) and "otel.status_description" in end.metadata:
                    lines.append(f"{pad}    error  {end.metadata['otel.status_description']}")
                walk(child.uuid, depth + 1)
            else:
                severity = f" [{child.severity.name.lower()}]" if child.severity else ""
                lines.append(f"{pad}• mark      {child.name}{severity}  {describe(child)}")

    for root in roots:
        walk(root, 0)
    return "\n".join(lines)


def main() -> int:
    received: list[nemo_relay.ScopeEvent | nemo_relay.MarkEvent] = []
    subscribers.register("demo-collector", received.append)
    answer = asyncio.run(plan_trip("PAR", budget=700))
    delivered = subscribers.flush(timeout=5)

    print("nemo_relay demo: a scripted travel-planning agent\n")
    print(render(received))
    print(f"\nanswer: {answer}")
    stats = subscribers.stats()
    print(
        f"events: {len(received)} delivered (dispatcher: published={stats.published}, "
        f"dropped={stats.dropped}, drained={'yes' if delivered else 'no'})"
    )
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
