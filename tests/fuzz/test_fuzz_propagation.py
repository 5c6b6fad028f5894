"""Fuzz ``PropagationContext``: construction from id strings, ``from_json`` on arbitrary text, and the
``to_json``/``to_traceparent`` forms (core-api §2.7).

Only the documented errors may escape: ``ValueError`` (the uuid crate's message for a bad id,
``invalid argument: ...`` for the version, unusable ids and bad JSON), ``TypeError`` for a non-``str`` id or
a non-integer version, ``OverflowError`` for a version outside u16 (the reference's integer extraction).
``from_json`` of any ``str`` raises only ``ValueError("invalid argument: ...")``: no ``RecursionError`` on
deeply nested text, no ``TypeError`` from a wrong-typed field. Valid contexts round-trip exactly through
``to_json``/``from_json``, and an installed propagated stack reports the same traceparent.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_module
from typing import Any

import pytest
from fuzz_support import fuzz_settings, short_texts, texts
from hypothesis import given
from hypothesis import strategies as st

from nemo_relay import (
    PropagationContext,
    capture_propagation_context,
    capture_traceparent,
    create_scope_stack_from_propagation,
    use_scope_stack,
)
from nemo_relay.errors import InvalidArgumentError, InvalidValueError

pytestmark = pytest.mark.timeout(120)

HEX = "0123456789abcdefABCDEF"
HYPHENATED = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
TRACEPARENT = re.compile(r"\A00-[0-9a-f]{32}-[0-9a-f]{16}-01\Z")
LOW_64 = (1 << 64) - 1

# --- ids in every accepted form, and near misses ------------------------------------------------------------

id_values = st.one_of(
    st.integers(0, 2**128 - 1),
    st.sampled_from([0, 1, 1 << 64, (1 << 128) - 1, ((1 << 64) - 1) << 64, 0x0191E7A4_0000_7000_8000_000000000001]),
)


def _form(value: int, form: str, upper: bool) -> str:
    text = str(uuid_module.UUID(int=value))
    text = text.upper() if upper else text
    if form == "simple":
        return text.replace("-", "")
    if form == "braced":
        return "{" + text + "}"
    if form == "urn":
        return "urn:uuid:" + text
    return text


well_formed_ids = st.builds(_form, id_values, st.sampled_from(["hyphenated", "simple", "braced", "urn"]), st.booleans())


@st.composite
def mutated_ids(draw: st.DrawFn) -> str:
    text = draw(well_formed_ids)
    position = draw(st.integers(0, len(text)))
    edit = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "pad"]))
    char = draw(st.sampled_from(["-", "g", "{", "}", " ", "é", "0", "F", ":", "\x00", "💥"]))
    if edit == "replace" and position < len(text):
        return text[:position] + char + text[position + 1 :]
    if edit == "delete":
        return text[:position] + text[position + 1 :]
    if edit == "insert":
        return text[:position] + char + text[position:]
    if edit == "truncate":
        return text[:position]
    return " " + text if draw(st.booleans()) else text + "\n"


id_texts = st.one_of(well_formed_ids, mutated_ids(), texts, st.sampled_from(["", "urn:uuid:", "{}", "-" * 36]))


def parse_model(text: str) -> int | None:
    """The id a text denotes (the uuid crate's forms: hyphenated, simple, braced, urn), else None."""
    body = text
    if text.startswith("urn:uuid:"):
        body = text[9:]
    elif text.startswith("{") and text.endswith("}"):
        body = text[1:-1]
    if HYPHENATED.match(body):
        return int(body.replace("-", ""), 16)
    if body is text and len(text) == 32 and all(c in HEX for c in text):
        return int(text, 16)
    return None


def canonical(value: int) -> str:
    return str(uuid_module.UUID(int=value))


# --- construction ---------------------------------------------------------------------------------------------

versions = st.one_of(st.just(1), st.just(1), st.integers(-3, 3), st.sampled_from([2**16 - 1, 2**16, 2**70, True]))


@given(
    parent=st.one_of(id_texts, st.sampled_from([None, 5, b"id"])),
    root=st.one_of(st.none(), id_texts, st.just(7)),
    version=st.one_of(versions, st.sampled_from([1.0, "1", None])),
)
@fuzz_settings(300)
def test_construction_accepts_exactly_the_documented_inputs(parent: Any, root: Any, version: Any) -> None:
    """The constructor accepts every uuid-crate id form (any case) with version 1 and usable ids, and refuses
    anything else with the documented error type and message."""
    # The reference's order: version type and range, the parent id then the root id (type, then syntax), then
    # version 1, then usability.
    expected: tuple[type[Exception], str | None] | None = None
    parent_id = parse_model(parent) if isinstance(parent, str) else None
    root_id = parse_model(root) if isinstance(root, str) else None
    if not isinstance(version, int):
        expected = TypeError, None
    elif not 0 <= version <= 0xFFFF:
        expected = OverflowError, None
    elif not isinstance(parent, str):
        expected = TypeError, None
    elif parent_id is None:
        expected = ValueError, None  # the uuid crate's message, checked below
    elif root is not None and not isinstance(root, str):
        expected = TypeError, None
    elif root is not None and root_id is None:
        expected = ValueError, None
    elif version != 1:
        expected = ValueError, f"invalid argument: unsupported propagation context version {int(version)}; expected 1"
    elif parent_id & LOW_64 == 0:
        expected = ValueError, "invalid argument: propagation context parent_uuid is not a usable Relay identifier"
    elif root_id is not None and root_id & LOW_64 == 0:
        expected = ValueError, "invalid argument: propagation context root_uuid is not a usable Relay identifier"
    try:
        context = PropagationContext(parent, root, version)
    except (TypeError, ValueError, OverflowError) as exc:
        assert expected is not None, f"refused a valid context: {exc!r}"
        assert isinstance(exc, expected[0]), f"{type(exc).__name__}: {exc}"
        if expected[1] is not None:
            assert str(exc) == expected[1]
        elif expected[0] is ValueError:
            assert str(exc).startswith(("invalid character:", "invalid length:", "invalid group")), str(exc)
        return
    assert expected is None, f"accepted {parent!r}, {root!r}, {version!r}; expected {expected}"
    assert parent_id is not None
    assert context.parent_uuid == canonical(parent_id)
    assert context.root_uuid == (None if root_id is None else canonical(root_id))
    assert context.version == 1
    check_valid_context(context)


def check_valid_context(context: PropagationContext) -> None:
    """``to_json`` is the documented compact form and round-trips; ``to_traceparent`` is W3C-shaped."""
    text = context.to_json()
    pairs = json.loads(text, object_pairs_hook=list)
    keys = ["version", "parent_uuid"] if context.root_uuid is None else ["version", "root_uuid", "parent_uuid"]
    assert [key for key, _ in pairs] == keys
    assert text == json.dumps(dict(pairs), separators=(",", ":"))
    again = PropagationContext.from_json(text)
    assert again == context and hash(again) == hash(context)
    assert (again.parent_uuid, again.root_uuid, again.version) == (context.parent_uuid, context.root_uuid, 1)
    if context.root_uuid is None:
        with pytest.raises(ValueError, match=r"^invalid argument: rootless propagation context cannot be converted"):
            context.to_traceparent()
        return
    traceparent = context.to_traceparent()
    assert TRACEPARENT.match(traceparent)
    root_hex, parent_hex = uuid_module.UUID(context.root_uuid).hex, uuid_module.UUID(context.parent_uuid).hex
    assert traceparent == f"00-{root_hex}-{parent_hex[-16:]}-01"


# --- from_json on arbitrary text ---------------------------------------------------------------------------------

field_values = st.one_of(
    id_texts,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(short_texts, st.integers(), max_size=2),
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), versions.filter(lambda v: v is not True), field_values),
        "parent_uuid": st.one_of(well_formed_ids, field_values),
        "root_uuid": st.one_of(well_formed_ids, field_values),
        "traceparent": field_values,
        "extra": field_values,
    },
)


def _dumps(document: dict[str, Any], spaced: bool) -> str:
    # allow_nan: NaN/Infinity literals are not JSON; the parser must refuse them as such.
    return json.dumps(document, separators=(", ", ": ") if spaced else (",", ":"), allow_nan=True)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    text = _dumps(draw(documents), draw(st.booleans()))
    edit = draw(st.sampled_from(["none", "none", "truncate", "insert", "duplicate", "wrap", "deep", "surround"]))
    if edit == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if edit == "insert":
        position = draw(st.integers(0, len(text)))
        return text[:position] + draw(st.sampled_from(list('{}[]",:0 \\x'))) + text[position:]
    if edit == "duplicate" and len(text) > 2:
        return text[:-1] + ', "parent_uuid": ' + json.dumps(draw(well_formed_ids)) + "}"
    if edit == "wrap":
        return "[" + text + "]"
    if edit == "deep":
        depth = draw(st.sampled_from([127, 128, 129, 1000, 5000, 100_000]))
        return '{"version":1,"parent_uuid":' + "[" * depth + "]" * depth + "}"
    if edit == "surround":
        return draw(st.sampled_from([" ", "\n", "\ufeff", "x"])) + text + draw(st.sampled_from(["", " ", " x"]))
    return text


@given(text=st.one_of(json_texts(), texts, st.sampled_from(["", "null", "[]", "{}", "1", '"x"', "[" * 50_000])))
@fuzz_settings(300)
def test_from_json_raises_only_value_errors(text: str) -> None:
    """Any text parses to a valid context or raises ``ValueError("invalid argument: ...")``; a parsed context
    matches the document's fields and round-trips."""
    try:
        context = PropagationContext.from_json(text)
    except InvalidValueError as exc:
        assert isinstance(exc, ValueError) and str(exc).startswith("invalid argument: ")
        return
    document = json.loads(text)  # accepted text is JSON (NaN and friends excluded by the parser)
    assert isinstance(document, dict) and document["version"] == 1
    parent_id = parse_model(document["parent_uuid"])
    assert parent_id is not None and context.parent_uuid == canonical(parent_id)
    root = document.get("root_uuid")
    assert context.root_uuid == (None if root is None else canonical(parse_model(root)))  # type: ignore[arg-type]
    check_valid_context(context)


@given(value=st.one_of(st.none(), st.integers(), st.binary(max_size=4), st.lists(st.integers(), max_size=2)))
@fuzz_settings(20)
def test_from_json_refuses_non_text_with_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="argument 'text'"):
        PropagationContext.from_json(value)


# --- the installed stack ---------------------------------------------------------------------------------------


@given(parent=id_values.filter(lambda v: v & LOW_64), root=st.one_of(st.none(), id_values.filter(lambda v: v & LOW_64)))
@fuzz_settings(60)
def test_propagated_stack_reports_the_context(parent: int, root: int | None) -> None:
    """A stack created from a context continues from its parent, and a rooted one reports the context's own
    traceparent (a rootless one has no emitted scope to name, which is the documented error)."""
    context = PropagationContext(canonical(parent), None if root is None else canonical(root))
    with use_scope_stack(create_scope_stack_from_propagation(context)):
        captured = capture_propagation_context()
        assert captured.parent_uuid == context.parent_uuid
        if root is None:
            with pytest.raises(InvalidArgumentError, match="no emitted Relay scope is available"):
                capture_traceparent()
        else:
            assert capture_traceparent() == context.to_traceparent()
