"""Endpoint URLs (parsing, OTLP path completion, canonical destinations) and ATIF file-name templates.

Expected values were observed with the reference wheel (validation diagnostics and rendered files).
"""

from __future__ import annotations

import pytest

from nemo_relay._core.observability import config_url as urls
from nemo_relay._core.observability.config import FilenameRenderError, render_filename, template_error
from nemo_relay._core.observability.config_serde import debug_str

SID = "01a201ab-fdc2-7bc0-ade0-b0b8062b4a79"


@pytest.mark.parametrize(
    ("text", "serialized"),
    [
        ("http://x", "http://x/"),
        (" http://x/a ", "http://x/a"),
        ("http:x", "http://x/"),
        ("http:///x", "http://x/"),
        ("http:\\\\x\\a", "http://x/a"),
        ("HTTP://X:80", "http://x/"),
        ("https://x:443/p", "https://x/p"),
        ("http://x:8080", "http://x:8080/"),
        ("http://x:", "http://x/"),
        ("http://ex%41mple", "http://example/"),
        ("http://0x7f.1/a", "http://127.0.0.1/a"),
        ("http://[0::1]:80/x", "http://[::1]/x"),
        ("http://x/a/./b/../c", "http://x/a/c"),
        ("http://x/a b?q=b c#f g", "http://x/a%20b?q=b%20c#f%20g"),
        ("http://u:p@x/", "http://u:p@x/"),
        ("http://x\n/", "http://x/"),
        ("ws://h/events", "ws://h/events"),
        ("grpc://x/custom", "grpc://x/custom"),
        ("mailto:x", "mailto:x"),
    ],
)
def test_parse_accepts_what_a_whatwg_parser_accepts(text: str, serialized: str) -> None:
    assert urls.parse(text).serialize() == serialized


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nonsense", "relative URL without a base"),
        ("", "relative URL without a base"),
        ("http://", "empty host"),
        ("http://x:99999", "invalid port number"),
        ("http://x:a", "invalid port number"),
        ("http://a b", "invalid domain character"),
        ("http://%zz", "invalid domain character"),
        ("http://x\x00/", "invalid domain character"),
        ("http://1.2.3.4.5", "invalid IPv4 address"),
        ("http://999.1.1.1", "invalid IPv4 address"),
        ("http://[::1", "invalid IPv6 address"),
        ("http://[zz]/", "invalid IPv6 address"),
    ],
)
def test_parse_rejects_with_reference_reasons(text: str, reason: str) -> None:
    with pytest.raises(urls.UrlError, match=reason):
        urls.parse(text)


@pytest.mark.parametrize(
    ("endpoint", "completed"),
    [
        ("http://h:4318", "http://h:4318/v1/traces"),
        ("http://h:4318/", "http://h:4318/"),
        ("http://h:4318?x=1", "http://h:4318/v1/traces?x=1"),
        ("http://h:4318/?x=1", "http://h:4318/?x=1"),
        ("https://h/custom", "https://h/custom"),
        ("grpc://h", "grpc://h"),
        ("http://h:99999", "http://h:99999"),
    ],
)
def test_trace_path_completion(endpoint: str, completed: str) -> None:
    assert urls.complete_signal_path(endpoint, "/v1/traces") == completed


@pytest.mark.parametrize(
    ("endpoint", "destination"),
    [
        ("http://127.0.0.2:80/a//b/", "http://<loopback>:80/a/b"),
        ("http://LOCALHOST./a/b", "http://<loopback>:80/a/b"),
        ("http://api.localhost/a", "http://<loopback>:80/a"),
        ("http://[::1]/a", "http://<loopback>:80/a"),
        ("http://[::ffff:127.0.0.1]/a", "http://[::ffff:7f00:1]:80/a"),
        ("http://x./a", "http://x.:80/a"),
        ("https://B\u00fccher.de/x", "https://xn--bcher-kva.de:443/x"),
        ("http://x//", "http://x:80/"),
        ("http://x/?", "http://x:80/?"),
        ("http://u@x/a#frag", "http://x:80/a"),
        ("grpc://x", "grpc://x"),
        ("  nonsense ", "nonsense"),
    ],
)
def test_canonical_destination(endpoint: str, destination: str) -> None:
    assert urls.canonical_destination(endpoint) == destination


def test_debug_str_escapes_like_rust() -> None:
    assert debug_str('a"b\\c\n\u00e9\x01\t') == '"a\\"b\\\\c\\n\u00e9\\u{1}\\t"'


@pytest.mark.parametrize(
    ("template", "metadata", "rendered"),
    [
        ("nemo-relay-atif-{session_id}.json", None, f"nemo-relay-atif-{SID}.json"),
        ("{session_id}/{session_id}.json", {}, f"{SID}/{SID}.json"),
        ("{metadata.a:-fb}/t-{session_id}.json", {}, f"fb/t-{SID}.json"),
        ("{metadata.a:-fb}/t-{session_id}.json", {"a": None}, f"fb/t-{SID}.json"),
        ("{metadata.a:-x/y}/{session_id}", None, f"x/y/{SID}"),
        ("{metadata.a.b}/{session_id}", {"a": {"b": "deep"}}, f"deep/{SID}"),
        ("{metadata.a.b:-z}/{session_id}", {"a": None}, f"z/{SID}"),
        ("{metadata.a}{metadata.a}-{session_id}", {"a": "q"}, f"qq-{SID}"),
        ("{other}-{session_id}", {}, f"{{other}}-{SID}"),
    ],
)
def test_render_filename(template: str, metadata: dict[str, object] | None, rendered: str) -> None:
    assert template_error(template) is None
    assert render_filename(template, SID, metadata) == rendered


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("x/y", "x-y"),
        ("../y", "-y"),
        ("a b", "a-b"),
        ("a.b", "a.b"),
        ("a..b", "a-b"),
        ("...", "-"),
        ("a/./b", "a-.-b"),
        (".a", ".a"),
        ("a.", "a."),
        ("\u00e9", "-"),
        ("\u00e9\u00e9x", "-x"),
        ("a  b", "a-b"),
        ("-a-", "-a-"),
        ("a~b", "a~b"),
        ("A_b-1.2", "A_b-1.2"),
        ("a/../b", "a-b"),
        ("  ", "-"),
        ("/", "-"),
        ("a-/-b", "a---b"),
        ("a/..", "a-"),
        ("./a", ".-a"),
        (".", "-"),
        ("..", "-"),
        ("x..y..z", "x-y-z"),
        (". .", ".-."),
        ("x\ny", "x-y"),
    ],
)
def test_rendered_metadata_becomes_one_safe_segment(value: str, segment: str) -> None:
    assert render_filename("P{metadata.a}Q-{session_id}", SID, {"a": value}) == f"P{segment}Q-{SID}"


_PLACEHOLDER = "filename_template placeholder"


@pytest.mark.parametrize(
    ("template", "metadata", "message"),
    [
        (
            "{metadata.a:-fb}/{session_id}",
            {"a": 123},
            f"{_PLACEHOLDER} '{{metadata.a}}' resolved to a non-string value",
        ),
        ("{metadata.a}/{session_id}", {}, f"{_PLACEHOLDER} '{{metadata.a}}' must resolve to a string"),
        ("{metadata.a}/{session_id}", None, f"{_PLACEHOLDER} '{{metadata.a}}' must resolve to a string"),
        ("{metadata.a}/{session_id}", {"a": ""}, "metadata path 'a' must be a path-safe relative fragment"),
        ("{metadata.a.b}/{session_id}", {"a": "s"}, f"{_PLACEHOLDER} '{{metadata.a.b}}' traversed a non-object value"),
        ("{metadata.a.b:-z}/{session_id}", {"a": 5}, f"{_PLACEHOLDER} '{{metadata.a.b}}' traversed a non-object value"),
        ("{metadata.a.b}/{session_id}", {"a": [1]}, f"{_PLACEHOLDER} '{{metadata.a.b}}' traversed a non-object value"),
        (
            "{metadata.a}/{session_id}",
            {"a": {"x": 1}},
            f"{_PLACEHOLDER} '{{metadata.a}}' resolved to a non-string value",
        ),
        (
            "{metadata.a.b}/{session_id}",
            {"a": {"b": True}},
            f"{_PLACEHOLDER} '{{metadata.a.b}}' resolved to a non-string value",
        ),
    ],
)
def test_render_errors_carry_the_diagnostic_message(template: str, metadata: object, message: str) -> None:
    with pytest.raises(FilenameRenderError) as info:
        render_filename(template, SID, metadata)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_pinned_non_string_metadata_message() -> None:
    with pytest.raises(FilenameRenderError, match="non-string"):
        render_filename("{metadata.atif_prefix:-unassigned}/trajectory-{session_id}.json", SID, {"atif_prefix": 123})
