"""``OpenTelemetryConfig`` validation (reference texts) and the shared OpenTelemetry helpers in ``otel/common``.

Error texts were confirmed against the reference wheel (nemo-relay 0.8.4).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from nemo_relay import OpenTelemetryConfig, OpenTelemetrySubscriber
from nemo_relay._core.diagnostics import RuntimeDiagnostics
from nemo_relay._core.observability.otel import common


def test_config_defaults_and_repr() -> None:
    config = OpenTelemetryConfig("full", "http://x")
    assert (config.type, config.endpoint, config.transport) == ("full", "http://x", "http_binary")
    assert (config.service_name, config.service_namespace, config.service_version) == ("unknown_service", None, None)
    assert (config.instrumentation_scope, config.timeout_millis) == ("opentelemetry", 3000)
    assert config.completed_span_context_ttl_millis == 60000
    assert (config.mark_projection, config.mark_exclude_names) == ("inherit", ["llm.chunk"])
    assert config.promote_metadata_prefixes == config.promote_resource_metadata_prefixes == []
    assert config.headers == config.resource_attributes == {} and config.attribute_mappings == []
    assert repr(config) == '<OpenTelemetryConfig transport="http_binary" endpoint="http://x">'


def test_config_maps_are_copies_and_setters_add() -> None:
    config = OpenTelemetryConfig("full", "http://x")
    config.headers = {"A": "1"}
    config.set_header("b", "2")
    config.headers["c"] = "ignored"  # a copy
    assert config.headers == {"A": "1", "b": "2"}
    config.set_resource_attribute("deployment.environment", "ci")
    assert config.resource_attributes == {"deployment.environment": "ci"}
    config.attribute_mappings = [{"key": "a", "alias": "b"}]
    assert config.attribute_mappings == [{"alias": "b", "key": "a"}]


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("timeout_millis", -1, OverflowError, "can't convert negative int to unsigned"),
        (
            "attribute_mappings",
            [{"key": "a"}],
            ValueError,
            "attribute_mappings must be a list of mappings: missing field `alias`",
        ),
        ("attribute_mappings", [{"key": " ", "alias": "b"}], ValueError, "attribute mapping key must not be blank"),
        ("attribute_mappings", [{"key": "a", "alias": ""}], ValueError, "attribute mapping alias must not be blank"),
        (
            "attribute_mappings",
            [{"key": "a", "alias": "b"}, {"key": "c", "alias": "b"}],
            ValueError,
            'attribute mapping alias "b" is duplicated',
        ),
        ("service_name", 5, TypeError, "'int' object cannot be converted"),
    ],
)
def test_config_setters_check_values(field: str, value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        setattr(OpenTelemetryConfig("full", "http://x"), field, value)


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("transport", "bogus", ValueError, "transport must be 'http_binary' or 'grpc', got \"bogus\""),
        ("type", "bogus", ValueError, "type must be 'full', 'gen_ai', or 'openinference', got \"bogus\""),
        ("mark_projection", "bogus", ValueError, "unknown variant `bogus`, expected one of `inherit`, `event`, `tool`"),
        ("endpoint", "  ", ValueError, "endpoint is required and must be nonblank"),
        ("promote_metadata_prefixes", ["a."] * 2, ValueError, 'metadata promotion prefix "a." is duplicated'),
        (
            "promote_metadata_prefixes",
            ["a*"],
            ValueError,
            'metadata promotion prefix "a*" must be a literal prefix, not a glob',
        ),
        ("promote_metadata_prefixes", [""], ValueError, "metadata promotion prefix must not be blank"),
        (
            "promote_metadata_prefixes",
            ["a..b"],
            ValueError,
            'metadata promotion prefix "a..b" must contain letter, number, underscore, or hyphen segments separated '
            "by single dots, with an optional trailing dot",
        ),
        (
            "completed_span_context_ttl_millis",
            0,
            RuntimeError,
            "failed to build the OTLP exporter: completed_span_context_ttl must be greater than 0",
        ),
        ("headers", {"bad header": "v"}, RuntimeError, 'invalid OTLP header "bad header": invalid HTTP header name'),
        ("headers", {"a": "bad\nvalue"}, RuntimeError, 'invalid OTLP header "a": failed to parse header value'),
    ],
)
def test_subscriber_rejects_unusable_configs(field: str, value: Any, error: type[Exception], message: str) -> None:
    config = OpenTelemetryConfig("full", "http://127.0.0.1:4318")
    setattr(config, field, value)
    with pytest.raises(error) as raised:
        OpenTelemetrySubscriber(config)
    assert str(raised.value) == message


def test_gen_ai_accepts_any_mark_projection_and_one_subscriber_can_hold_several_names() -> None:
    config = OpenTelemetryConfig("gen_ai", "http://127.0.0.1:4318")
    config.mark_projection = "tool"
    subscriber = OpenTelemetrySubscriber(config)
    subscriber.register("otel-a")
    subscriber.register("otel-b")
    with pytest.raises(RuntimeError, match="already exists: otel-a subscriber already exists"):
        subscriber.register("otel-a")
    assert (subscriber.deregister("otel-a"), subscriber.deregister("otel-a"), subscriber.deregister("otel-b")) == (
        True,
        False,
        True,
    )
    subscriber.shutdown(timeout=1)
    subscriber.shutdown(timeout=1)  # a second shutdown does nothing
    with pytest.raises(RuntimeError, match="already shut down"):
        subscriber.force_flush()


def test_config_needs_no_opentelemetry_library() -> None:
    import subprocess

    code = (
        "import sys, nemo_relay\n"
        "config = nemo_relay.OpenTelemetryConfig('openinference', 'http://x')\n"
        "config.mark_projection = 'tool'\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'openinference'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.not_there", None)
    with pytest.raises(ImportError, match=r"pip install 'nemo-relay-py\[otel\]'"):
        common.require("opentelemetry.not_there")
    with pytest.raises(ImportError, match=r"pip install 'nemo-relay-py\[otel-grpc\]'"):
        common.require("opentelemetry.not_there", grpc=True)
    with pytest.raises(ImportError, match=r"pip install 'nemo-relay-py\[openinference\]'"):
        common.require("opentelemetry.not_there", extra="openinference")


# --- common: endpoints, headers, batches, resource, ids -------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "signal", "expected"),
    [
        ("http://h:4318", "traces", "http://h:4318/v1/traces"),
        ("https://h", "logs", "https://h/v1/logs"),
        ("http://h:4318?x=1", "metrics", "http://h:4318/v1/metrics?x=1"),
        ("http://h:4318/", "traces", "http://h:4318/"),  # an explicit root stays
        ("http://h:4318/custom", "traces", "http://h:4318/custom"),
        ("http://h:4318/v1/traces", "traces", "http://h:4318/v1/traces"),
        ("grpc://h:4317", "traces", "grpc://h:4317"),
        ("not a url", "traces", "not a url"),
    ],
)
def test_http_endpoint_completion(endpoint: str, signal: str, expected: str) -> None:
    assert common.resolve_http_endpoint(endpoint, signal) == expected


def test_header_env_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_TOKEN", "t")
    assert common.resolve_headers({"a": "1"}, {"authorization": "RELAY_TOKEN"}) == {"a": "1", "authorization": "t"}
    monkeypatch.setenv("RELAY_TOKEN", "  ")
    with pytest.raises(RuntimeError, match="RELAY_TOKEN, which is unset or blank") as raised:
        common.resolve_headers({}, {"authorization": "RELAY_TOKEN"})
    assert "  " not in str(raised.value).split("RELAY_TOKEN")[1]


def test_batch_settings_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert common.batch_settings() == (2048, 512, 5000)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "not a number")
    assert common.batch_settings() == (10, 5, 5000)
    assert common.batch_settings(4, 2, 100) == (4, 2, 100)
    with pytest.raises(ValueError, match="must not exceed"):
        common.batch_settings(2, 4)


def test_resource_is_exactly_what_is_configured() -> None:
    pytest.importorskip("opentelemetry.sdk.resources")
    resource = common.build_resource("svc", None, "1.0", {"k": "v"})
    assert dict(resource.attributes) == {"service.name": "svc", "service.version": "1.0", "k": "v"}


def test_deterministic_ids() -> None:
    uuid = "01a201a6-86f6-7a93-b22f-316abbf2e4a2"
    assert common.span_id_of(uuid) == 0xB22F316ABBF2E4A2
    assert common.trace_id_of(uuid) == 0x01A201A686F67A93B22F316ABBF2E4A2


# --- common: JSON to attributes and metadata promotion ---------------------------------------------------------


def test_top_level_json_projection() -> None:
    attributes: common.Attributes = {}
    value = {"s": "x", "b": True, "i": -3, "big": 2**64 - 1, "f": 2.5, "n": None, "l": [1, None], "o": {"k": None}}
    common.push_top_level_json_attributes(attributes, "p", value)
    assert attributes == {
        "p.b": True,
        "p.big": "18446744073709551615",
        "p.f": 2.5,
        "p.i": -3,
        "p.l": "[1,null]",
        "p.o": '{"k":null}',
        "p.s": "x",
    }
    assert list(attributes) == sorted(attributes)  # fields in key order
    scalar: common.Attributes = {}
    common.push_top_level_json_attributes(scalar, "q", [])
    common.push_top_level_json_attributes(scalar, "r", None)
    assert scalar == {"q": "[]"}


@pytest.mark.parametrize(
    ("value", "promoted", "reason"),
    [
        ("s", "s", None),
        (False, False, None),
        (-5, -5, None),
        (1.5, 1.5, None),
        ([], [], None),
        (["a", "b"], ["a", "b"], None),
        ([1, 2.5], [1.0, 2.5], None),
        (2**63, None, "unsigned integer is larger than OTLP i64"),
        (None, None, "null values are not OTLP attributes"),
        ({"a": 1}, None, "object values are not supported"),
        ([None, "x"], None, "arrays of null are not OTLP attributes"),
        ([[1], None], None, "nested arrays and objects are not supported"),
        ([1, None], None, "array values must have one primitive type"),
        ([True, 1], None, "array values must have one primitive type"),
        ([1.5, 2**63 + 2], None, "array contains an unsigned integer larger than OTLP i64"),
    ],
)
def test_promotion_values(value: Any, promoted: Any, reason: str | None) -> None:
    diagnostics = RuntimeDiagnostics()
    promoter = common.MetadataPromoter(["p."], diagnostics, "opentelemetry", "f")
    refused: list[tuple[str, str]] = []
    result = promoter.promote({"p.k": value}, on_reject=lambda key, why: refused.append((key, why)))
    if reason is None:
        assert result == {"p.k": promoted} and not diagnostics
    else:
        assert result == {} and refused == [("p.k", reason)]
        entry = diagnostics.get("otel.metadata_promotion_value_unsupported.p.k")
        assert entry is not None and entry["field"] == "f" and reason in entry["message"]


def test_promotion_skips_keys_the_target_already_has_and_reserved_namespaces() -> None:
    promoter = common.MetadataPromoter(["a", "metadata", "llm."], RuntimeDiagnostics(), "opentelemetry")
    metadata = {"alias": 1, "agent": 2, "metadata": 3, "llm.x": 4, "other": 5}
    assert promoter.promote(metadata, existing={"alias"}) == {"agent": 2}
    assert not common.MetadataPromoter([], RuntimeDiagnostics(), "c")
