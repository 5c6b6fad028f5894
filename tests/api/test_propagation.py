"""PropagationContext, W3C traceparent capture, and stacks rebuilt from a propagated context (also across a
real process boundary)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nemo_relay
from nemo_relay import PropagationContext, ScopeType, scope

PARENT = "0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"
ROOT = "0190a1b2-0000-7e5f-8a6b-1c2d3e4f5a6b"
OTHER = "0190a1b2-1111-7e5f-8a6b-1c2d3e4f5a6b"
ZERO = "00000000-0000-0000-0000-000000000000"
ZERO_LOW = "0190a1b2-c3d4-7e5f-0000-000000000000"

INVALID_CHAR = "invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found "
NO_SCOPE_FOR_TRACEPARENT = "invalid argument: no emitted Relay scope is available for traceparent capture"


def hex_of(uuid: str) -> str:
    return uuid.replace("-", "")


def traceparent(root: str, parent: str) -> str:
    return f"00-{hex_of(root)}-{hex_of(parent)[-16:]}-01"


def phase(event: object) -> str:
    return getattr(event, "scope_category", "mark")


# --- construction and validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0190a1b2c3d47e5f8a6b1c2d3e4f5a6b",
        "0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b",
        "{0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b}",
        "urn:uuid:0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b",
        "0190A1B2-C3D4-7E5F-8A6B-1C2D3E4F5A6B",
        "0190A1B2C3D47E5F8A6B1C2D3E4F5A6B",
        "{0190A1B2-c3d4-7E5F-8a6b-1C2D3E4F5A6B}",
    ],
    ids=["simple", "hyphenated", "braced", "urn", "upper", "upper-simple", "mixed-braced"],
)
def test_accepted_uuid_forms_are_normalised(text):
    ctx = PropagationContext(text, text)
    assert ctx.parent_uuid == PARENT
    assert ctx.root_uuid == PARENT
    assert ctx.version == 1


def test_defaults_are_rootless_version_one():
    ctx = PropagationContext(PARENT)
    assert ctx.root_uuid is None
    assert ctx.version == 1
    assert PropagationContext(PARENT, None, 1).root_uuid is None
    assert PropagationContext(parent_uuid=PARENT, root_uuid=ROOT, version=1).root_uuid == ROOT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not-a-uuid", INVALID_CHAR + "`n` at 1"),
        ("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6g", INVALID_CHAR + "`g` at 36"),
        ("0190a1b2_c3d4-7e5f-8a6b-1c2d3e4f5a6b", INVALID_CHAR + "`_` at 9"),
        (" 0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b", INVALID_CHAR + "` ` at 1"),
        ("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b ", INVALID_CHAR + "` ` at 37"),
        ("é190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b", INVALID_CHAR + "`é` at 1"),
        ("0190a1b2c3d47e5f8a6b1c2d3e4f5a6", "invalid length: expected length 32 for simple format, found 31"),
        ("0190a1b2c3d47e5f8a6b1c2d3e4f5a6bb", "invalid length: expected length 32 for simple format, found 33"),
        ("", "invalid length: expected length 32 for simple format, found 0"),
        ("0190a1b2-c3d4-7e5f-8a6b", "invalid group count: expected 5, found 4"),
        ("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b-12", "invalid group count: expected 5, found 6"),
        ("01-90a1b2c3d47e5f8a6b1c2d3e4f5a6b", "invalid group count: expected 5, found 2"),
        ("0190a1b2-c3d4-7e5f-8a6b--1c2d3e4f5a6b", "invalid group count: expected 5, found 6"),
        ("{0190a1b2c3d47e5f8a6b1c2d3e4f5a6b}", "invalid group count: expected 5, found 1"),
        ("urn:uuid:0190a1b2c3d47e5f8a6b1c2d3e4f5a6b", "invalid group count: expected 5, found 1"),
        ("0190a1b-2c3d4-7e5f-8a6b-1c2d3e4f5a6b", "invalid group length in group 0: expected 8, found 7"),
        ("0190a1b2-c3d-47e5f-8a6b-1c2d3e4f5a6b", "invalid group length in group 1: expected 4, found 3"),
        ("0190a1b2-c3d4-7e5-f8a6b-1c2d3e4f5a6b", "invalid group length in group 2: expected 4, found 3"),
        ("0190a1b2-c3d4-7e5f-8a6-b1c2d3e4f5a6b", "invalid group length in group 3: expected 4, found 3"),
        ("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6", "invalid group length in group 4: expected 12, found 11"),
        ("0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b0", "invalid group length in group 4: expected 12, found 13"),
    ],
)
@pytest.mark.parametrize("field", ["parent_uuid", "root_uuid"])
def test_uuid_parse_errors_use_the_uuid_crate_wording(text, message, field):
    with pytest.raises(ValueError) as info:
        if field == "parent_uuid":
            PropagationContext(text)
        else:
            PropagationContext(PARENT, text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Braced and urn forms: the reference reports character positions within the braces/after the prefix,
        # and the last group's length from the full input length.
        ("{g190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b}", INVALID_CHAR + "`g` at 1"),
        ("{0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6x}", INVALID_CHAR + "`x` at 36"),
        ("urn:uuid:g190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b", INVALID_CHAR + "`g` at 1"),
        ("urn:uuid:0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6x", INVALID_CHAR + "`x` at 36"),
        ("{0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6}", "invalid group length in group 4: expected 12, found 13"),
        ("urn:uuid:0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6", "invalid group length in group 4: expected 12, found 20"),
        ("{0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b", INVALID_CHAR + "`{` at 1"),
    ],
    ids=[
        "braced-char-first",
        "braced-char-last",
        "urn-char-first",
        "urn-char-last",
        "braced-short",
        "urn-short",
        "unclosed-brace",
    ],
)
def test_braced_and_urn_parse_errors_match_the_reference(text, message):
    with pytest.raises(ValueError) as info:
        PropagationContext(text)
    assert str(info.value) == message


@pytest.mark.parametrize("version", [0, 2, 7])
def test_unsupported_version(version):
    expected = f"invalid argument: unsupported propagation context version {version}; expected 1"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        PropagationContext(PARENT, ROOT, version)


@pytest.mark.parametrize("version", [-1, 65536])
def test_version_outside_u16_overflows(version):
    with pytest.raises(OverflowError):
        PropagationContext(PARENT, None, version)


@pytest.mark.parametrize("value", [ZERO, ZERO_LOW, "0190a1b2c3d47e5f0000000000000000"])
def test_unusable_identifiers(value):
    with pytest.raises(ValueError) as info:
        PropagationContext(value)
    assert str(info.value) == "invalid argument: propagation context parent_uuid is not a usable Relay identifier"
    with pytest.raises(ValueError) as info:
        PropagationContext(PARENT, value)
    assert str(info.value) == "invalid argument: propagation context root_uuid is not a usable Relay identifier"


def test_a_nonzero_low_half_is_usable():
    low_only = "00000000-0000-0000-0000-000000000001"
    ctx = PropagationContext(low_only, low_only)
    assert ctx.parent_uuid == ctx.root_uuid == low_only


def test_validation_order_parse_then_version_then_usability():
    # Both identifiers are parsed before either is checked for usability ...
    with pytest.raises(ValueError, match="invalid character"):
        PropagationContext(ZERO_LOW, "zzz")
    # ... and the version is checked before usability.
    version_error = "invalid argument: unsupported propagation context version 2; expected 1"
    with pytest.raises(ValueError, match=re.escape(version_error)):
        PropagationContext(ZERO_LOW, None, 2)
    with pytest.raises(ValueError, match=re.escape(version_error)):
        PropagationContext(PARENT, ZERO_LOW, 2)
    with pytest.raises(ValueError, match="invalid character"):
        PropagationContext("zzz", None, 2)
    with pytest.raises(ValueError, match="parent_uuid is not a usable"):
        PropagationContext(ZERO, ZERO)


@pytest.mark.parametrize(
    ("args", "argument", "type_name"),
    [
        ((1,), "parent_uuid", "int"),
        ((b"0190a1b2c3d47e5f8a6b1c2d3e4f5a6b",), "parent_uuid", "bytes"),
        ((PARENT, 5), "root_uuid", "int"),
        ((PARENT, ["x"]), "root_uuid", "list"),
    ],
)
def test_uuid_type_errors(args, argument, type_name):
    expected = f"argument '{argument}': '{type_name}' object is not an instance of 'str'"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        PropagationContext(*args)


def test_none_parent_is_a_type_error():
    with pytest.raises(TypeError, match=r"^argument 'parent_uuid': "):
        PropagationContext(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("version", "type_name"), [("1", "str"), (1.0, "float"), (None, "NoneType")])
def test_version_type_errors(version, type_name):
    with pytest.raises(TypeError, match=re.escape(f"'{type_name}' object cannot be interpreted as an integer")):
        PropagationContext(PARENT, None, version)  # type: ignore[arg-type]


def test_value_equality_and_repr():
    ctx = PropagationContext(PARENT.upper(), ROOT)
    assert ctx == PropagationContext(hex_of(PARENT), "{" + ROOT + "}")
    assert hash(ctx) == hash(PropagationContext(PARENT, ROOT))
    assert ctx != PropagationContext(PARENT)
    assert ctx != PropagationContext(ROOT, PARENT)
    assert "PropagationContext" in repr(ctx) and PARENT in repr(ctx) and ROOT in repr(ctx)


# --- JSON -------------------------------------------------------------------------------------------


def test_to_json_exact_shape_and_key_order():
    assert (
        PropagationContext(PARENT.upper(), hex_of(ROOT)).to_json()
        == f'{{"version":1,"root_uuid":"{ROOT}","parent_uuid":"{PARENT}"}}'
    )
    assert PropagationContext(PARENT).to_json() == f'{{"version":1,"parent_uuid":"{PARENT}"}}'


@pytest.mark.parametrize("root", [ROOT, None, PARENT])
def test_from_json_round_trip(root):
    ctx = PropagationContext(PARENT, root)
    back = PropagationContext.from_json(ctx.to_json())
    assert (back.version, back.parent_uuid, back.root_uuid) == (1, PARENT, root)
    assert back == ctx
    assert back.to_json() == ctx.to_json()


def test_from_json_ignores_unknown_fields_and_accepts_any_key_order():
    text = json.dumps(
        {"parent_uuid": PARENT.upper(), "extra": [1, 2], "version": 1, "nested": {"a": None}, "root_uuid": ROOT}
    )
    ctx = PropagationContext.from_json(text)
    assert (ctx.parent_uuid, ctx.root_uuid) == (PARENT, ROOT)


def test_from_json_null_root_is_rootless():
    ctx = PropagationContext.from_json(f'{{"version":1,"root_uuid":null,"parent_uuid":"{PARENT}"}}')
    assert ctx.root_uuid is None
    assert ctx.to_json() == f'{{"version":1,"parent_uuid":"{PARENT}"}}'


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        "[]",
        "1",
        "null",
        '"s"',
        "{",
        '{"version":1}',
        f'{{"parent_uuid":"{PARENT}"}}',
        f'{{"version":"1","parent_uuid":"{PARENT}"}}',
        f'{{"version":1.0,"parent_uuid":"{PARENT}"}}',
        f'{{"version":-1,"parent_uuid":"{PARENT}"}}',
        f'{{"version":true,"parent_uuid":"{PARENT}"}}',
        '{"version":1,"parent_uuid":5}',
        '{"version":1,"parent_uuid":null}',
        '{"version":1,"parent_uuid":["x"]}',
        f'{{"version":1,"parent_uuid":"{PARENT}","root_uuid":7}}',
        f'{{"version":1,"parent_uuid":"{PARENT}","root_uuid":{{}}}}',
        '{"version":1,"parent_uuid":"nope"}',
        f'{{"version":1,"parent_uuid":"{PARENT}","root_uuid":"nope"}}',
        f'{{"version":1,"parent_uuid":"{PARENT}"}} trailing',
        f'{{"version":1,"parent_uuid":"{PARENT}",}}',
        pytest.param(f'{{"version":1,"parent_uuid":"{PARENT}","parent_uuid":"{ROOT}"}}', id="duplicate-field"),
    ],
)
def test_from_json_rejects_malformed_input(text):
    with pytest.raises(ValueError, match="invalid propagation context JSON"):
        PropagationContext.from_json(text)


def test_from_json_applies_the_constructor_checks():
    with pytest.raises(ValueError) as info:
        PropagationContext.from_json(f'{{"version":2,"parent_uuid":"{PARENT}"}}')
    assert str(info.value) == "invalid argument: unsupported propagation context version 2; expected 1"
    with pytest.raises(ValueError) as info:
        PropagationContext.from_json(f'{{"version":1,"parent_uuid":"{ZERO}"}}')
    assert str(info.value) == "invalid argument: propagation context parent_uuid is not a usable Relay identifier"
    with pytest.raises(ValueError) as info:
        PropagationContext.from_json(f'{{"version":1,"parent_uuid":"{PARENT}","root_uuid":"{ZERO_LOW}"}}')
    assert str(info.value) == "invalid argument: propagation context root_uuid is not a usable Relay identifier"


@pytest.mark.parametrize("value", [5, None, {"version": 1}])
def test_from_json_requires_a_string(value):
    with pytest.raises(TypeError):
        PropagationContext.from_json(value)  # type: ignore[arg-type]


# --- traceparent ------------------------------------------------------------------------------------


def test_to_traceparent_format():
    value = PropagationContext(PARENT, ROOT).to_traceparent()
    assert value == "00-0190a1b200007e5f8a6b1c2d3e4f5a6b-8a6b1c2d3e4f5a6b-01"
    assert value == traceparent(ROOT, PARENT)
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", value)
    assert PropagationContext(PARENT, PARENT).to_traceparent() == traceparent(PARENT, PARENT)


def test_to_traceparent_requires_a_root():
    with pytest.raises(ValueError) as info:
        PropagationContext(PARENT).to_traceparent()
    assert str(info.value) == "invalid argument: rootless propagation context cannot be converted to traceparent"


def test_capture_traceparent_raises_at_the_bare_root():
    with pytest.raises(RuntimeError) as info:
        nemo_relay.capture_traceparent()
    assert str(info.value) == NO_SCOPE_FOR_TRACEPARENT


def test_capture_traceparent_inside_scopes_keeps_the_first_scope_as_trace_id():
    first = scope.push("first", ScopeType.Agent)
    assert nemo_relay.capture_traceparent() == traceparent(first.uuid, first.uuid)
    second = scope.push("second", ScopeType.Function)
    third = scope.push("third", ScopeType.Tool)
    assert nemo_relay.capture_traceparent() == traceparent(first.uuid, third.uuid)
    scope.pop(third)
    assert nemo_relay.capture_traceparent() == traceparent(first.uuid, second.uuid)
    scope.pop(second)
    scope.pop(first)
    with pytest.raises(RuntimeError, match=re.escape(NO_SCOPE_FOR_TRACEPARENT)):
        nemo_relay.capture_traceparent()


def test_capture_traceparent_uses_the_propagation_parent_var():
    parent_token = nemo_relay._propagation_parent_var.set(PARENT)
    try:
        # Without a propagated root the parent doubles as the trace id (even at a bare root).
        assert nemo_relay.capture_traceparent() == traceparent(PARENT, PARENT)
        root_token = nemo_relay._propagation_root_var.set(ROOT)
        try:
            assert nemo_relay.capture_traceparent() == traceparent(ROOT, PARENT)
        finally:
            nemo_relay._propagation_root_var.reset(root_token)
    finally:
        nemo_relay._propagation_parent_var.reset(parent_token)


# --- capture ----------------------------------------------------------------------------------------


def test_capture_propagation_context_is_rootless_with_the_top_as_parent():
    at_root = nemo_relay.capture_propagation_context()
    assert at_root.root_uuid is None
    assert at_root.parent_uuid == scope.get_handle().uuid
    outer = scope.push("outer", ScopeType.Agent)
    inner = scope.push("inner", ScopeType.Function)
    ctx = nemo_relay.capture_propagation_context()
    assert (ctx.parent_uuid, ctx.root_uuid, ctx.version) == (inner.uuid, None, 1)
    scope.pop(inner)
    assert nemo_relay.capture_propagation_context().parent_uuid == outer.uuid
    scope.pop(outer)


def test_capture_propagation_context_uses_the_propagation_parent_var():
    outer = scope.push("outer", ScopeType.Agent)
    parent_token = nemo_relay._propagation_parent_var.set(OTHER)
    try:
        ctx = nemo_relay.capture_propagation_context()
        assert (ctx.parent_uuid, ctx.root_uuid) == (OTHER, None)
        root_token = nemo_relay._propagation_root_var.set(hex_of(ROOT))
        try:
            ctx = nemo_relay.capture_propagation_context()
            assert (ctx.parent_uuid, ctx.root_uuid) == (OTHER, ROOT)
            with_root = nemo_relay.capture_propagation_context_with_root(PARENT)
            assert (with_root.parent_uuid, with_root.root_uuid) == (OTHER, PARENT)
        finally:
            nemo_relay._propagation_root_var.reset(root_token)
    finally:
        nemo_relay._propagation_parent_var.reset(parent_token)
    assert nemo_relay.capture_propagation_context().parent_uuid == outer.uuid
    scope.pop(outer)


def test_capture_propagation_context_with_root():
    outer = scope.push("outer", ScopeType.Agent)
    ctx = nemo_relay.capture_propagation_context_with_root(ROOT.upper())
    assert (ctx.parent_uuid, ctx.root_uuid) == (outer.uuid, ROOT)
    assert ctx.to_traceparent() == traceparent(ROOT, outer.uuid)
    assert nemo_relay.capture_propagation_context_with_root(outer.uuid).to_traceparent() == (
        nemo_relay.capture_traceparent()
    )
    scope.pop(outer)


def test_capture_propagation_context_with_root_none_is_rootless():
    outer = scope.push("outer", ScopeType.Agent)
    ctx = nemo_relay.capture_propagation_context_with_root(None)  # type: ignore[arg-type]
    assert (ctx.parent_uuid, ctx.root_uuid) == (outer.uuid, None)
    scope.pop(outer)


def test_capture_propagation_context_with_an_invalid_root():
    with pytest.raises(ValueError) as info:
        nemo_relay.capture_propagation_context_with_root("bad")
    assert str(info.value) == "invalid length: expected length 32 for simple format, found 3"
    with pytest.raises(ValueError, match="invalid character"):
        nemo_relay.capture_propagation_context_with_root("not-a-uuid")
    with pytest.raises(TypeError):
        nemo_relay.capture_propagation_context_with_root(5)  # type: ignore[arg-type]


def test_capture_propagation_context_with_an_unusable_root_is_a_runtime_error():
    with pytest.raises(RuntimeError) as info:
        nemo_relay.capture_propagation_context_with_root(ZERO)
    assert str(info.value) == "invalid argument: propagation context root_uuid is not a usable Relay identifier"


# --- stacks from a propagation context -----------------------------------------------------------------


def test_create_scope_stack_from_a_rooted_context():
    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(PARENT, ROOT))
    assert repr(stack) == "<ScopeStack>"
    with nemo_relay.use_scope_stack(stack):
        top = scope.get_handle()
        assert (top.name, top.uuid, top.parent_uuid) == ("propagated-parent", PARENT, ROOT)
        assert top.scope_type == ScopeType.Unknown
        assert nemo_relay.capture_traceparent() == traceparent(ROOT, PARENT)
        ctx = nemo_relay.capture_propagation_context()
        assert (ctx.parent_uuid, ctx.root_uuid) == (PARENT, None)
        child = scope.push("child", ScopeType.Function)
        assert child.parent_uuid == PARENT
        # The propagated root stays the trace id below new scopes.
        assert nemo_relay.capture_traceparent() == traceparent(ROOT, child.uuid)
        scope.pop(child)
        # Beneath the propagated parent sits the propagated root, an Agent.
        scope.pop(top)
        bottom = scope.get_handle()
        assert (bottom.name, bottom.uuid, bottom.parent_uuid) == ("propagated-root", ROOT, None)
        assert bottom.scope_type == ScopeType.Agent
        with pytest.raises(RuntimeError, match="root scope cannot be removed"):
            scope.pop(bottom)


def test_create_scope_stack_from_a_context_whose_root_is_its_parent():
    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(PARENT, PARENT))
    with nemo_relay.use_scope_stack(stack):
        top = scope.get_handle()
        assert (top.name, top.uuid, top.parent_uuid) == ("propagated-root", PARENT, None)
        assert top.scope_type == ScopeType.Agent
        assert nemo_relay.capture_traceparent() == traceparent(PARENT, PARENT)
        child = scope.push("child", ScopeType.Function)
        assert child.parent_uuid == PARENT
        assert nemo_relay.capture_traceparent() == traceparent(PARENT, child.uuid)
        scope.pop(child)
        with pytest.raises(RuntimeError, match="root scope cannot be removed"):
            scope.pop(top)


def test_create_scope_stack_from_a_rootless_context():
    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(PARENT))
    with nemo_relay.use_scope_stack(stack):
        top = scope.get_handle()
        assert (top.name, top.uuid, top.parent_uuid) == ("propagated-root", PARENT, None)
        assert top.scope_type == ScopeType.Agent
        with pytest.raises(RuntimeError, match=re.escape(NO_SCOPE_FOR_TRACEPARENT)):
            nemo_relay.capture_traceparent()
        child = scope.push("child", ScopeType.Function)
        assert child.parent_uuid == PARENT
        # A rootless import starts a new trace at its first real scope.
        assert nemo_relay.capture_traceparent() == traceparent(child.uuid, child.uuid)
        scope.pop(child)


def test_create_scope_stack_from_propagation_requires_a_context():
    with pytest.raises(TypeError):
        nemo_relay.create_scope_stack_from_propagation(PARENT)  # type: ignore[arg-type]


def test_each_call_builds_a_new_stack():
    ctx = PropagationContext(PARENT, ROOT)
    first = nemo_relay.create_scope_stack_from_propagation(ctx)
    second = nemo_relay.create_scope_stack_from_propagation(ctx)
    assert first is not second
    with nemo_relay.use_scope_stack(first):
        pushed = scope.push("only-on-first", ScopeType.Agent)
    with nemo_relay.use_scope_stack(second):
        assert scope.get_handle().uuid == PARENT
    with nemo_relay.use_scope_stack(first):
        assert scope.get_handle().uuid == pushed.uuid


@pytest.mark.parametrize("root", [ROOT, PARENT, None], ids=["rooted", "root-is-parent", "rootless"])
def test_propagated_handles_never_emit_events(events, root):
    stack = nemo_relay.create_scope_stack_from_propagation(PropagationContext(PARENT, root))
    with nemo_relay.use_scope_stack(stack):
        scope.event("at-propagated-top")
        child = scope.push("child", ScopeType.Function, input={"x": 1})
        scope.event("inside-child")
        scope.pop(child, output={"y": 2})
    assert events.names() == [
        ("mark", "at-propagated-top"),
        ("start", "child"),
        ("mark", "inside-child"),
        ("end", "child"),
    ]
    assert events[0].parent_uuid == PARENT
    assert events[1].parent_uuid == PARENT and events[3].parent_uuid == PARENT
    assert events[2].parent_uuid == child.uuid


# --- across a real process boundary ----------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    import nemo_relay
    from nemo_relay import PropagationContext, ScopeType, scope

    ctx = PropagationContext.from_json(sys.argv[1])
    stack = nemo_relay.create_scope_stack_from_propagation(ctx)
    with nemo_relay.use_scope_stack(stack):
        top = scope.get_handle()
        child = scope.push("child-process-scope", ScopeType.Agent)
        print(json.dumps({
            "round_trip": ctx.to_json(),
            "top": [top.name, top.uuid],
            "uuid": child.uuid,
            "parent_uuid": child.parent_uuid,
            "traceparent": nemo_relay.capture_traceparent(),
        }))
        scope.pop(child)
    """
)


def test_round_trip_across_a_subprocess():
    session_root = "0190a1b2-2222-7e5f-8a6b-1c2d3e4f5a6b"
    outer = scope.push("request", ScopeType.Agent)
    sent = nemo_relay.capture_propagation_context_with_root(session_root).to_json()
    scope.pop(outer)
    assert sent == f'{{"version":1,"root_uuid":"{session_root}","parent_uuid":"{outer.uuid}"}}'

    package_dir = Path(nemo_relay.__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_dir), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, sent], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["round_trip"] == sent
    assert result["top"] == ["propagated-parent", outer.uuid]
    assert result["parent_uuid"] == outer.uuid
    assert result["uuid"] not in (outer.uuid, session_root)
    assert result["traceparent"] == traceparent(session_root, result["uuid"])
