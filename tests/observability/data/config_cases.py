"""Observability config documents for the table-driven validation tests.

``expected`` outputs live in ``config_cases.json``; regenerate them against the reference wheel with
``/work/refvenv/bin/python tests/observability/data/regen_config_cases.py`` (the reference venv
only; nothing here imports it).
"""

ENV = {"RELAY_SET": "yes", "RELAY_BLANK": "  ", "RELAY_EMPTY": ""}
UNSET_ENV = ("RELAY_UNSET", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY")

_FULL = {"type": "full", "endpoint": "http://x"}


def _stream(**extra):
    return {"atof": {"sinks": [{"type": "stream", "url": "http://x", **extra}]}}


def _ep(**extra):
    return {"opentelemetry": {"endpoints": [{**_FULL, **extra}]}}


def _pair(first, second, **extra):
    return {
        "opentelemetry": {
            "endpoints": [{"type": "full", "endpoint": first, **extra}, {"type": "gen_ai", "endpoint": second, **extra}]
        }
    }


def _logs(**section):
    return {"opentelemetry": {"enabled": True, "logs": {"enabled": True, **section}}}


def _template(template):
    return {"atif": {"filename_template": template}}


def _storage(*items):
    return {"atif": {"storage": list(items)}}


CASES = [
    # --- top level, version, policy, type errors
    {},
    {"version": 3},
    {"version": 4, "enable_full_payloads": True},
    {"version": 0},
    {"version": 5},
    {"version": 9, "zz": 1},
    {"version": "4"},
    {"version": None},
    {"version": -1},
    {"version": 4.0},
    {"version": True},
    {"version": 4294967296},
    {"version": 1e300},
    {"version": 1e-7},
    {"version": 1e16},
    {"version": 2.5e-5},
    {"version": 123456789.0},
    {"version": -0.0},
    {"version": 'a"b\\c\n\u00e9\x01'},
    {"version": {}},
    {"version": []},
    {"foo": 1, "version": "4"},
    {"foo": 1, "openinference": {}},
    {"openinference": None},
    {"policy": {"x": "warn"}},
    {"policy": {"unknown_field": "bad"}},
    {"policy": {"unknown_field": 5}},
    {"policy": {"unknown_field": {"warn": None}}},
    {"policy": {"unknown_field": {"warn": 1}}},
    {"policy": {"unknown_field": {}}},
    {"policy": {"unknown_field": {"bad": None}}},
    {"policy": ["warn"]},
    {"policy": ["warn", "warn", "warn", "warn"]},
    {"policy": None},
    {"policy": 5},
    {"enable_full_payloads": "yes"},
    {"enable_full_payloads": None},
    {"version": "x", "atof": 5},
    {"atof": 5, "version": "x"},
    # --- ATOF
    {"atof": None},
    {"atof": 5},
    {"atof": [True, []]},
    {"atof": [True]},
    {"atof": [True, [], 5]},
    {"atof": {"enabled": True}},
    {"atof": {"enabled": True, "sinks": []}},
    {"atof": {"enabled": None}},
    {"atof": {"sinks": None}},
    {"atof": {"sinks": {}}},
    {"atof": {"enabled": True, "output_directory": "x", "foo": 1}},
    {"atof": {"enabled": True, "endpoints": [], "filename": "x", "output_directory": "d", "mode": "x"}},
    {"atof": {"enabled": True, "sinks": [{"type": "file", "mode": "bad"}]}},
    {"atof": {"enabled": False, "sinks": [{"type": "file", "mode": "bad"}]}},
    {"atof": {"sinks": [{"type": "file", "mode": "Append"}]}},
    {"atof": {"sinks": [{"type": "file", "mode": 5}]}},
    {"atof": {"sinks": [{"type": "file", "mode": None}]}},
    {"atof": {"sinks": [{"type": "file", "output_directory": 5}]}},
    {"atof": {"sinks": [{"type": "file", "output_directory": "", "filename": "../x"}]}},
    {"atof": {"sinks": [{"type": "file", "zzz": 1}]}},
    {"atof": {"sinks": [{"type": "bogus"}]}},
    {"atof": {"sinks": [{"mode": "x"}]}},
    {"atof": {"sinks": [5]}},
    {"atof": {"sinks": [{"type": 5}]}},
    {"atof": {"sinks": [{"type": None}]}},
    {"atof": {"sinks": [["file"]]}},
    {"atof": {"sinks": [["file", None, None, "bad"]]}},
    {"atof": {"sinks": [[5]]}},
    {"atof": {"sinks": [[]]}},
    {"atof": {"sinks": [["stream"]]}},
    {"atof": {"sinks": [["file", 5]]}},
    {"atof": {"sinks": [{"type": "stream"}]}},
    _stream(url=5),
    _stream(transport=5),
    _stream(transport="bad"),
    _stream(transport="HTTP_POST"),
    _stream(transport="websocket"),
    _stream(transport="ndjson"),
    _stream(url="ws://x", transport="websocket"),
    _stream(url="ftp://x", transport="bad"),
    _stream(headers=5),
    _stream(headers={"a": 5}),
    _stream(header_env=[]),
    _stream(timeout_millis=-5),
    _stream(timeout_millis=0),
    _stream(timeout_millis=18446744073709551615),
    _stream(field_name_policy=5),
    _stream(field_name_policy="x"),
    _stream(field_name_policy="replace_dots"),
    _stream(name=5),
    _stream(name=None),
    _stream(name=""),
    _stream(name=" a"),
    {
        "atof": {
            "sinks": [
                {"type": "stream", "url": "http://x", "name": "a"},
                {"type": "stream", "url": "", "name": "a"},
                {"type": "file", "mode": "x"},
                {"type": "stream", "url": "http://y", "name": "a "},
                {"type": "stream", "url": "http://y", "name": "a"},
            ]
        }
    },
    _stream(url=""),
    _stream(url="  "),
    _stream(url="nonsense"),
    _stream(url="ws://x"),
    _stream(url="file:///x"),
    _stream(url="http:///x"),
    _stream(url=" http://x"),
    _stream(url="http://x:99999"),
    _stream(url="http://"),
    _stream(url="http://a b"),
    _stream(url="http://[::1]:80/x"),
    _stream(url="http://[::1"),
    _stream(url="http://[zz]/"),
    _stream(url="http://user:pw@x/"),
    _stream(url="http://x\n/"),
    _stream(url="http://x\x00/"),
    _stream(url="http://1.2.3.4.5"),
    _stream(url="http://999.1.1.1"),
    _stream(url="http://0x7f.1"),
    _stream(url="http://%zz"),
    _stream(url="http://ex%41mple"),
    _stream(url="http://\u00e9.com"),
    _stream(url="http://x:"),
    _stream(url="http://x:a"),
    _stream(url="http:\\\\x"),
    _stream(url="http:x"),
    _stream(url="HTTPS://X/Y"),
    {
        "atof": {
            "sinks": [
                {
                    "type": "stream",
                    "url": "",
                    "transport": "bad",
                    "timeout_millis": 0,
                    "field_name_policy": "x",
                    "name": "",
                    "headers": {"bad name": "v\n", "A": "x"},
                    "header_env": {"a": "RELAY_UNSET", "": " ", "h2": "RELAY_BLANK"},
                }
            ]
        }
    },
    _stream(headers={"": "v"}),
    _stream(headers={"x-a": "v\u00e9"}),
    _stream(headers={"x-a": "v\u0001"}),
    _stream(headers={"x-a": " v "}),
    _stream(headers={"x-a": "a\tb"}),
    _stream(headers={"x-a": "a\u007fb"}),
    _stream(headers={"X-A": "1", "x-a": "2"}),
    _stream(header_env={"x-a": "RELAY_SET"}),
    _stream(header_env={"x-a": "RELAY_UNSET"}),
    _stream(header_env={"x-a": "RELAY_BLANK"}),
    _stream(header_env={"x-a": "RELAY_EMPTY"}),
    _stream(header_env={"x-a": ""}),
    _stream(header_env={"x-a": " RELAY_SET"}),
    _stream(header_env={"x a": "RELAY_SET"}),
    _stream(header_env={"x-a": "A=B"}),
    _stream(headers={"X-A": "1"}, header_env={"x-a": "RELAY_SET"}),
    _stream(header_env={"X-A": "RELAY_SET", "x-a": "RELAY_SET"}),
    _stream(headers={"bad name": "v"}, header_env={"bad name": ""}),
    _stream(headers={"bad name": "v"}, header_env={"BAD NAME": " x"}),
    # --- ATIF
    {"atif": 5},
    {"atif": {"foo": 1, "enabled": True}},
    {"atif": {"agent_name": 5}},
    {"atif": {"agent_name": "", "agent_version": "", "model_name": "", "extra": 5, "tool_definitions": [5]}},
    {"atif": {"agent_version": None}},
    {"atif": {"model_name": None}},
    {"atif": {"tool_definitions": 5}},
    {"atif": {"tool_definitions": None, "extra": None, "output_directory": None}},
    {"atif": {"output_directory": 5}},
    {"atif": {"storage": None}},
    _template(""),
    _template(None),
    _template("x.json"),
    _template("/{session_id}.json"),
    _template("../{session_id}.json"),
    _template("./{session_id}.json"),
    _template("a/./{session_id}.json"),
    _template("a//{session_id}.json"),
    _template("{session_id}/"),
    _template("{session_id}/."),
    _template("{session_id}/.."),
    _template("a/../{session_id}"),
    _template("a\\..\\{session_id}"),
    _template("{metadata.a}/{session_id}"),
    _template("{metadata.a/{session_id}"),
    _template("{metadata.}/{session_id}"),
    _template("{metadata.a..b}/{session_id}"),
    _template("{metadata.a b}/{session_id}"),
    _template("{metadata.a:-}/{session_id}"),
    _template("{metadata.a:-x/y}/{session_id}"),
    _template("{metadata.a:-../y}/{session_id}"),
    _template("{metadata.a:-x y}/{session_id}"),
    _template("{metadata.a:-x//y}/{session_id}"),
    _template("{metadata.a:-~x.y_z-1}/{session_id}"),
    _template("{metadata.a:-.}/{session_id}"),
    _template("{metadata.a:-x/}/{session_id}"),
    _template("{metadata.a:-/x}/{session_id}"),
    _template("{metadata.a:-\u00e9}/{session_id}"),
    _template("{metadata.\u00e9}/{session_id}"),
    _template("{metadata.A.b}/{session_id}"),
    _template("{metadata..a}/{session_id}"),
    _template("{metadata.a.}/{session_id}"),
    _template("{metadata.x}/../{session_id}"),
    _template("{metadata:-x}/{session_id}"),
    _template("{other}/{session_id}"),
    _template("{session_id}{session_id}"),
    _template("{metadata.a-b_c.d}{session_id}"),
    _template("{metadata.a:-b:-c}{session_id}"),
    _template("{session_id}}"),
    _template("C:{session_id}"),
    _template("{metadata.x}"),
    _template(".."),
    _template("/{metadata.}{session_id}"),
    _template("/{metadata.a:-..}{session_id}"),
    _template("{session_id}{metadata.a"),
    _template("{session_id}{metadata.a}{metadata.b b}"),
    _template("{session_id}{metadata.a b}{metadata.}"),
    _template("{session_id}{metadata.a:-x y}{metadata.b b}"),
    _template("{metadata.a b:-x y}{session_id}"),
    _template("{metadata.a:-x}}{session_id}"),
    _template("{metadata.{metadata.a}{session_id}"),
    {"atif": {"filename_template": "x", "enabled": False}},
    _storage(5),
    {"atif": {"storage": 5}},
    _storage({}),
    _storage({"type": "ftp"}),
    _storage({"type": "s3"}),
    _storage({"type": "s3", "bucket": " "}),
    _storage({"type": "s3", "bucket": " b "}),
    _storage({"type": "s3", "bucket": "b", "zzz": 1}),
    _storage({"type": "s3", "bucket": "b", "allow_http": "yes"}),
    _storage(
        {
            "type": "s3",
            "bucket": "b",
            "key_prefix": "",
            "access_key_id": "",
            "secret_access_key_var": "",
            "session_token_var": "",
            "region": "",
            "endpoint_url": "",
            "allow_http": True,
        }
    ),
    _storage({"type": "s3", "bucket": "b", "secret_access_key_var": "RELAY_UNSET", "session_token_var": "RELAY_BLANK"}),
    _storage({"type": "s3", "bucket": "b", "secret_access_key_var": " RELAY_SET", "session_token_var": "RELAY_SET"}),
    _storage({"type": "s3", "bucket": "", "secret_access_key_var": "RELAY_EMPTY", "session_token_var": "RELAY_EMPTY"}),
    _storage({"type": "s3", "bucket": "b", "endpoint_url": "nonsense", "key_prefix": "/x", "region": " "}),
    _storage({"type": "http"}),
    _storage({"type": "http", "endpoint": ""}),
    _storage({"type": "http", "endpoint": " http://x"}),
    _storage({"type": "http", "endpoint": "http://x "}),
    _storage({"type": "http", "endpoint": "ftp://x"}),
    _storage({"type": "http", "endpoint": "nonsense"}),
    _storage({"type": "http", "endpoint": "http:///x"}),
    _storage({"type": "http", "endpoint": "http://x:99999"}),
    _storage({"type": "http", "endpoint": "HTTP://x"}),
    _storage({"type": "http", "endpoint": "http://"}),
    _storage({"type": "http", "endpoint": "http://x", "timeout_millis": -1}),
    _storage({"type": "http", "endpoint": 5}),
    _storage({"type": "http", "endpoint": "http://x", "header_env": {"a": "RELAY_EMPTY"}}),
    _storage({"type": "http", "endpoint": "http://x", "headers": {"A": "1"}, "header_env": {"a": "RELAY_SET"}}),
    _storage(
        {
            "type": "http",
            "endpoint": "http://x",
            "timeout_millis": 0,
            "headers": {"a b": "\u0001"},
            "header_env": {"x": "RELAY_UNSET", "y": " Y", "a b": "", "z": "RELAY_BLANK"},
        }
    ),
    {"atif": {"storage": [{"type": "http", "endpoint": "http://x", "zz": 1}], "zz": 2}},
    {"atif": {"enabled": False, "storage": [{"type": "http", "endpoint": ""}]}},
    # --- OpenTelemetry section and trace endpoints
    {"opentelemetry": 5},
    {"opentelemetry": {"enabled": True}},
    {"opentelemetry": {"enabled": True, "endpoints": []}},
    {"opentelemetry": {"foo": 1, "transport": "x", "endpoint": "y", "mark_projection": 1}},
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [],
            "service_version": 1,
            "service_namespace": 1,
            "service_name": 1,
            "timeout_millis": 1,
            "instrumentation_scope": 1,
            "resource_attributes": 1,
            "headers": 1,
            "endpoint": 1,
            "transport": 1,
            "promote_metadata_prefixes": 1,
            "attribute_mappings": 1,
            "mark_exclude_names": 1,
            "mark_projection": 1,
        }
    },
    {"opentelemetry": {"endpoints": [5]}},
    {"opentelemetry": {"endpoints": [{}]}},
    {"opentelemetry": {"endpoints": [{"type": "full"}]}},
    {"opentelemetry": {"endpoints": [{"type": "bogus", "endpoint": "x"}]}},
    {"opentelemetry": {"endpoints": [{"type": 5, "endpoint": "x"}]}},
    {"opentelemetry": {"endpoints": [{"type": {"full": None}, "endpoint": "http://x"}]}},
    _ep(zzz=1, semantic_selector=1, capture_content=True),
    {"opentelemetry": {"traces": [_FULL], "endpoints": [{"type": "full", "endpoint": "http://y"}]}},
    {"opentelemetry": {"endpoints": [_FULL], "traces": None}},
    {"opentelemetry": {"traces": None}},
    {"opentelemetry": {"traces": [{**_FULL, "zzz": 1, "enabled": 1}]}},
    _ep(endpoint=""),
    _ep(endpoint="nonsense"),
    _ep(transport="bad"),
    _ep(transport="GRPC"),
    _ep(transport=5),
    _ep(mark_projection="bad"),
    _ep(mark_projection=5),
    _ep(type="gen_ai", mark_projection="tool", mark_exclude_names=["a"]),
    _ep(mark_exclude_names=[""]),
    _ep(mark_exclude_names=5),
    _ep(attribute_mappings=[{"key": "", "alias": " "}]),
    _ep(attribute_mappings=[{"key": "a", "alias": "b"}, {"key": "c", "alias": "b"}]),
    _ep(attribute_mappings=[{"key": "a"}]),
    _ep(attribute_mappings=[{"key": "a", "alias": "b", "z": 1}]),
    _ep(attribute_mappings=[{"key": "a", "alias": "a"}]),
    _ep(attribute_mappings={"a": "b"}),
    _ep(attribute_mappings=[["a", "b"]]),
    _ep(attribute_mappings=[["a"]]),
    _ep(attribute_mappings=[["a", "b", "c"]]),
    _ep(attribute_mappings=[{"key": " a", "alias": "b"}]),
    _ep(attribute_mappings=[{"key": "a", "alias": ""}]),
    _ep(attribute_mappings=[{"key": "a", "alias": " b"}, {"key": "c", "alias": "b"}]),
    _ep(promote_metadata_prefixes=["", " a", "a*", "a..b", "a.", "a", "a", ".a", "a b", "a-b_c.d"]),
    _ep(promote_resource_metadata_prefixes=["", "a*", "a", "a"]),
    _ep(promote_metadata_prefixes=["\u00e9"]),
    _ep(promote_metadata_prefixes=["a?", "[a]"]),
    _ep(promote_metadata_prefixes=[" "]),
    _ep(promote_metadata_prefixes=[" a"]),
    _ep(promote_metadata_prefixes=["a b"]),
    _ep(promote_metadata_prefixes=["a*b c"]),
    _ep(promote_metadata_prefixes=["a..b"]),
    _ep(promote_metadata_prefixes=["a."]),
    _ep(promote_metadata_prefixes=[".a"]),
    _ep(promote_metadata_prefixes=["."]),
    _ep(promote_metadata_prefixes=["a", "a"]),
    _ep(promote_metadata_prefixes=["a", "a."]),
    _ep(promote_metadata_prefixes=["A", "a"]),
    _ep(promote_metadata_prefixes=["a]"]),
    _ep(promote_metadata_prefixes=["a\t"]),
    _ep(promote_metadata_prefixes=[" a*"]),
    _ep(promote_metadata_prefixes=["a*."]),
    _ep(promote_metadata_prefixes=["a.b.c-d_E9."]),
    _ep(headers={"a b": "\u0001", "A": "1"}),
    _ep(headers={"A": "1"}, header_env={"a": "RELAY_SET"}),
    _ep(header_env={"a": "RELAY_UNSET", "b": "", "c": " X", "d b": "RELAY_SET", "E": "RELAY_BLANK"}),
    _ep(header_env={"a": "RELAY_EMPTY"}),
    _ep(headers={"a": "b"}, header_env={"A": ""}),
    _ep(headers={"a b": "v"}, header_env={"A B": ""}),
    _ep(resource_attributes={"": "x", "a": ""}),
    _ep(resource_attributes={"a": 5}),
    _ep(service_name="", instrumentation_scope="", service_namespace="", service_version=""),
    _ep(service_namespace=None, service_version=None),
    _ep(service_name=None),
    _ep(timeout_millis=0),
    _ep(max_queue_size=0),
    _ep(max_export_batch_size=0),
    _ep(scheduled_delay_millis=0),
    _ep(completed_span_context_ttl_millis=0),
    _ep(max_queue_size=10, max_export_batch_size=20),
    _ep(max_queue_size=10),
    _ep(max_export_batch_size=4000),
    _ep(max_queue_size=0, max_export_batch_size=0, scheduled_delay_millis=0, completed_span_context_ttl_millis=0),
    _ep(max_queue_size=5, max_export_batch_size=10, scheduled_delay_millis=0),
    _ep(max_queue_size=5, max_export_batch_size=10, completed_span_context_ttl_millis=0),
    _ep(max_queue_size=-1),
    _ep(max_queue_size=None),
    _ep(max_queue_size=18446744073709551615),
    _ep(max_queue_size=[1.5]),
    {
        "opentelemetry": {
            "endpoints": [
                {
                    "type": "full",
                    "endpoint": " ",
                    "transport": "x",
                    "attribute_mappings": [{"key": "", "alias": "b"}],
                    "promote_metadata_prefixes": [""],
                    "promote_resource_metadata_prefixes": [""],
                    "headers": {"a b": "v"},
                    "header_env": {"c d": ""},
                    "max_queue_size": 0,
                    "zz": 1,
                }
            ]
        }
    },
    {"opentelemetry": {"endpoints": [{"type": "full", "endpoint": ""}, {**_FULL, "max_queue_size": 0}]}},
    # --- destination collisions
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [
                {**_FULL, "endpoint": "http://h:4318"},
                {"type": "gen_ai", "endpoint": "http://localhost:4318/v1/traces"},
            ],
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://h:4318"}, {**_FULL, "endpoint": "http://h:4318/v1/traces"}],
        }
    },
    _pair("http://127.0.0.2:80/a//b/", "http://LOCALHOST./a/b"),
    _pair("grpc://x", "grpc://x"),
    _pair("http://x", "http://x", transport="grpc"),
    _pair("http://x", "http://x/v1/traces", transport="grpc"),
    _pair("http://x", "http://x", transport="bad"),
    {"opentelemetry": {"endpoints": [_FULL, {"type": "gen_ai", "endpoint": "http://x", "transport": "grpc"}]}},
    {
        "opentelemetry": {
            "endpoints": [
                _FULL,
                {"type": "gen_ai", "endpoint": "http://x"},
                {"type": "openinference", "endpoint": "http://x"},
            ]
        }
    },
    {
        "opentelemetry": {
            "endpoints": [
                {**_FULL, "endpoint": "http://[::1]:4318"},
                {"type": "gen_ai", "endpoint": "http://a.localhost:4318?x=1"},
                {"type": "openinference", "endpoint": "http://localhost:4318/?x=1"},
            ]
        }
    },
    _pair("https://x", "https://x:443/"),
    _pair("https://x/", "https://x:443/v1/traces"),
    _pair("http://x/A", "http://X/a"),
    _pair("http://x/a#f", "http://x/a"),
    _pair("http://u@x/a", "http://x/a"),
    _pair("http://x/%61", "http://x/a"),
    _pair(" http://x/a", "http://x/a"),
    _pair("http://0x7f.1/a", "http://localhost/a"),
    _pair("http://[::ffff:127.0.0.1]/a", "http://localhost/a"),
    _pair("http://[::2]:99/a//?q=1&b", "http://[0::2]:99/a/?q=1&b"),
    _pair("http://B\u00fccher.de/x", "http://xn--bcher-kva.de/x"),
    _pair("http://x?", "http://x/v1/traces?"),
    _pair("http://x//", "http://x/"),
    _pair("http://x#", "http://x/v1/traces"),
    _pair("HTTP://X:80", "http://x/v1/traces"),
    _pair("http://x/a b", "http://x/a%20b"),
    _pair("http://x/a/./b/../c", "http://x/a/c"),
    _pair("http://x:99999", "http://x:99999"),
    _pair("http://x.", "http://x/v1/traces"),
    _pair("http://x?a=b c", "http://x/v1/traces?a=b%20c"),
    _pair("", ""),
    _pair("nonsense", "nonsense"),
    # --- log / metric signals
    _logs(),
    _logs(endpoints=[]),
    {"opentelemetry": {"enabled": True, "logs": {"enabled": False, "endpoints": []}}},
    {"opentelemetry": {"enabled": False, "logs": {"enabled": True}}},
    {"opentelemetry": {"enabled": True, "logs": None}},
    {"opentelemetry": {"enabled": True, "logs": 5}},
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom"}, {"type": "gen_ai", "endpoint": "http://y"}],
            "logs": {"enabled": True},
            "metrics": {"enabled": True},
        }
    },
    _logs(
        endpoints=[
            {"endpoint": "http://x/v1/traces"},
            {"endpoint": "http://x/v1/metrics"},
            {"endpoint": "  "},
            {"endpoint": "http://y", "transport": "bad"},
            {"endpoint": "http://z", "type": "full"},
        ]
    ),
    _logs(endpoints=[{"endpoint": "http://x"}, {"endpoint": "http://x/v1/logs"}]),
    _logs(
        foo=1,
        minimum_severity="bad",
        max_queue_size=0,
        max_export_batch_size=0,
        scheduled_delay_millis=0,
        completed_span_context_ttl_millis=0,
        endpoints=[{"endpoint": "http://x", "zz": 1}],
    ),
    _logs(max_queue_size=5, max_export_batch_size=10, endpoints=[{"endpoint": "http://x"}]),
    _logs(max_queue_size=100, endpoints=[{"endpoint": "http://x"}]),
    _logs(minimum_severity="Warning", endpoints=[{"endpoint": "http://x"}]),
    _logs(minimum_severity=5),
    _logs(completed_span_context_ttl_millis=None),
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {
                "enabled": True,
                "foo": 1,
                "export_interval_millis": 0,
                "temporality": "bad",
                "max_instruments": 0,
                "cardinality_limit": 0,
                "endpoints": [{"endpoint": "http://x"}],
            },
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {
                "enabled": True,
                "cardinality_limit": 18446744073709551615,
                "endpoints": [{"endpoint": "http://x"}],
            },
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "temporality": "DELTA", "endpoints": [{"endpoint": "http://x"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [_FULL],
            "logs": {"minimum_severity": "bad", "max_queue_size": 0},
            "metrics": {"temporality": "bad"},
        }
    },
    {"opentelemetry": {"enabled": False, "logs": {"minimum_severity": "bad", "endpoints": [{"endpoint": "http://x"}]}}},
    {
        "opentelemetry": {
            "enabled": True,
            "logs": {
                "enabled": True,
                "endpoints": [{"endpoint": "http://x", "zz": 1}, {"endpoint": "http://y", "zz": 1}],
            },
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x", "zz": 1}]},
        }
    },
    {
        "opentelemetry": {
            "logs": {
                "zz": 1,
                "endpoints": [
                    {"endpoint": "http://x", "aa": 1, "enabled": True, "minimum_severity": "info"},
                    {"endpoint": "http://y", "bb": 1},
                ],
                "yy": 2,
            }
        }
    },
    _logs(
        endpoints=[{"endpoint": "http://x", "service_name": "", "resource_attributes": {"": ""}, "timeout_millis": 0}]
    ),
    _logs(
        endpoints=[
            {"endpoint": "http://x", "headers": {"a b": "\u0001"}, "header_env": {"A b": "", "c": "RELAY_UNSET"}}
        ]
    ),
    _logs(endpoints=[{"endpoint": "http://x", "mark_projection": "inherit"}]),
    _logs(endpoints=[5]),
    _logs(endpoints=[{}]),
    _logs(
        endpoints=[
            {"endpoint": "http://x/v1/traces", "headers": {"a b": "v"}},
            {"endpoint": " ", "type": "full", "transport": "x", "headers": {"c d": "v"}},
        ]
    ),
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://t"}],
            "logs": {
                "enabled": False,
                "endpoints": [{"endpoint": "http://x/v1/traces", "headers": {"a b": "v"}}, {"endpoint": " "}],
            },
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://t"}],
            "logs": {"enabled": False, "endpoints": []},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://t", "headers": {"a b": "v"}}],
            "logs": {"enabled": True},
        }
    },
    _logs(endpoints=[{"endpoint": "http://x", "headers": {"A": "v", "a": "w"}}]),
    _logs(endpoints=[{"endpoint": "http://x", "headers": {"a": "v", "c d": "x"}, "header_env": {"A": "X", "e f": ""}}]),
    _logs(endpoints=[{"endpoint": " "}, {"endpoint": "http://x/v1/traces"}]),
    _logs(endpoints=[{"endpoint": "http://x/v1/traces"}, {"endpoint": " "}]),
    _logs(endpoints=[{"endpoint": "http://x", "transport": "bad"}, {"endpoint": "http://x", "transport": "bad"}]),
    {"opentelemetry": {"enabled": True, "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/v1/logs"}]}}},
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/v1/metrics/"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/v1/logs/"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/v1/logs", "transport": "grpc"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/v1/logs?x"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/a/v1/logs"}]},
        }
    },
    {"opentelemetry": {"enabled": True, "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x/V1/LOGS"}]}}},
    {"opentelemetry": {"enabled": True, "metrics": {"enabled": True, "endpoints": [{"endpoint": "nonsense/v1/logs"}]}}},
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://x:99999/v1/logs"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "nonsense"}, {"endpoint": "nonsense"}]},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {
                "enabled": True,
                "endpoints": [
                    {"endpoint": "http://x", "transport": "grpc"},
                    {"endpoint": "http://x", "transport": "grpc"},
                ],
            },
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "metrics": {
                "enabled": True,
                "endpoints": [{"endpoint": "http://x/v1/logs"}, {"endpoint": "http://x/v1/traces"}],
            },
        }
    },
    {"opentelemetry": {"enabled": True, "endpoints": [{**_FULL, "endpoint": "nonsense"}], "logs": {"enabled": True}}},
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x:99999"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [_FULL, {**_FULL, "endpoint": "http://x/v1/traces"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom"}, {**_FULL, "endpoint": "http://x/other"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom", "transport": "grpc"}],
            "logs": {"enabled": True},
        }
    },
    {"opentelemetry": {"enabled": True, "endpoints": [{**_FULL, "endpoint": " "}], "logs": {"enabled": True}}},
    {"opentelemetry": {"enabled": True, "endpoints": [{**_FULL, "transport": "bad"}], "logs": {"enabled": True}}},
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "grpc://x/custom"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/a/v1/traces?q=1"}],
            "metrics": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": True,
            "endpoints": [{**_FULL, "endpoint": "http://x/a/v1/traces/"}],
            "metrics": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": False,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom"}],
            "logs": {"enabled": True},
        }
    },
    {
        "opentelemetry": {
            "enabled": False,
            "endpoints": [{**_FULL, "endpoint": "http://x/custom"}],
            "logs": {"enabled": False},
        }
    },
    {"version": 3, "opentelemetry": {"logs": {}, "metrics": {}}},
    {"version": 3, "opentelemetry": {"enabled": True, "endpoints": [_FULL], "logs": {"enabled": False}}},
    {"version": 3, "opentelemetry": {"enabled": True, "endpoints": [_FULL], "metrics": None}},
    {"version": 3, "opentelemetry": {"enabled": True, "endpoints": [_FULL], "metrics": {}}},
    {
        "version": 3,
        "opentelemetry": {
            "enabled": True,
            "endpoints": [_FULL],
            "logs": {"enabled": True, "zz": 1},
            "metrics": {"temporality": "bad"},
        },
    },
    # --- whole documents
    {
        "version": 3,
        "zz": 1,
        "openinference": {},
        "enable_full_payloads": True,
        "policy": {"qq": "warn"},
        "atof": {"enabled": True, "xx": 1, "mode": "x", "sinks": [{"type": "file", "mode": "bad"}]},
        "atif": {"yy": 1, "filename_template": "x", "storage": [{"type": "http", "endpoint": ""}]},
        "opentelemetry": {
            "enabled": True,
            "ww": 1,
            "headers": {},
            "endpoints": [
                {"type": "full", "endpoint": " ", "vv": 1},
                {"type": "gen_ai", "endpoint": "http://a"},
                {"type": "full", "endpoint": "http://a"},
            ],
            "logs": {"uu": 1, "minimum_severity": "x", "enabled": True},
            "metrics": {"tt": 1, "temporality": "x", "enabled": True, "endpoints": []},
        },
    },
    {
        "version": 4,
        "zz": 1,
        "openinference": {},
        "atof": {"enabled": True, "xx": 1, "mode": "x", "sinks": [{"type": "file", "mode": "bad"}]},
        "atif": {"yy": 1, "filename_template": "x", "storage": [{"type": "http", "endpoint": ""}]},
        "opentelemetry": {
            "enabled": True,
            "ww": 1,
            "headers": {},
            "endpoints": [
                {"type": "full", "endpoint": " ", "vv": 1},
                {"type": "gen_ai", "endpoint": "http://a"},
                {"type": "full", "endpoint": "http://a/x"},
            ],
            "logs": {"uu": 1, "minimum_severity": "x", "enabled": True},
            "metrics": {"tt": 1, "temporality": "x", "enabled": True, "endpoints": []},
        },
    },
    {
        "version": 9,
        "zz": 1,
        "openinference": {},
        "atof": {
            "enabled": True,
            "endpoints": [],
            "filename": "x",
            "output_directory": "d",
            "mode": "x",
            "sinks": [{"type": "file", "mode": "bad"}],
        },
    },
    {
        "version": 4,
        "enable_full_payloads": True,
        "atof": {
            "enabled": True,
            "sinks": [
                {"type": "file", "output_directory": "/tmp/x", "filename": "e.jsonl", "mode": "overwrite"},
                {
                    "type": "stream",
                    "url": "wss://h/p",
                    "transport": "websocket",
                    "name": "s",
                    "headers": {"authorization": "x"},
                    "header_env": {"x-key": "RELAY_SET"},
                    "timeout_millis": 10,
                    "field_name_policy": "replace_dots",
                },
            ],
        },
        "atif": {
            "enabled": True,
            "agent_name": "a",
            "agent_version": "1",
            "model_name": "m",
            "tool_definitions": [{"name": "t"}],
            "extra": {"k": 1},
            "output_directory": "/tmp/y",
            "filename_template": "{metadata.team:-none}/{session_id}.json",
            "storage": [
                {"type": "s3", "bucket": "b", "secret_access_key_var": "RELAY_SET"},
                {"type": "http", "endpoint": "https://h/up", "header_env": {"a": "RELAY_SET"}},
            ],
        },
        "opentelemetry": {
            "enabled": True,
            "endpoints": [
                {"type": "full", "endpoint": "http://h:4318"},
                {"type": "openinference", "endpoint": "http://p:6006/v1/traces", "transport": "http_binary"},
            ],
            "logs": {"enabled": True},
            "metrics": {"enabled": True, "endpoints": [{"endpoint": "http://m:4318"}]},
        },
    },
]

# Policy variants: (config policy, global-merged policy handed to validate_with_policy).
POLICY_DOC = {
    "zz": 1,
    "version": 9,
    "openinference": {},
    "atof": {"enabled": True, "mode": "x", "sinks": [{"type": "file", "mode": "bad"}]},
    "opentelemetry": {
        "enabled": True,
        "headers": {},
        "endpoints": [
            {"type": "full", "endpoint": "http://a", "max_queue_size": 0, "vv": 1, "capture_content": 1},
            {"type": "gen_ai", "endpoint": "http://a"},
            {"type": "full", "endpoint": "http://a/x"},
        ],
        "logs": {"enabled": True},
    },
}
POLICIES = [
    {"unknown_field": unknown, "unsupported_value": unsupported}
    for unknown in ("ignore", "warn", "error")
    for unsupported in ("ignore", "warn", "error")
]
