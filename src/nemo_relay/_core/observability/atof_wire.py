"""ATOF 0.1 wire lines for the exporters: a fast event serialiser and the ``replace_dots`` field policy.

``event_line(event)`` returns exactly ``event.to_json()`` (compact, keys sorted at every level,
non-ASCII kept) but builds the envelope from the event's internal fields with cached pieces, so the
dispatcher thread spends a few microseconds per event instead of a generic ``json.dumps`` of a fresh
dict. Only the payloads (``data``, ``metadata``, ``category_profile``, ``data_schema``) go through the
C encoder. Anything unexpected falls back to ``to_json()``, and a test pins the two as identical.
"""

from __future__ import annotations

import json
import time

from nemo_relay._core.events import ATOF_VERSION, MarkEvent, ScopeEvent
from nemo_relay._core.jsonconv import peek

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["event_line", "replace_dots", "replace_dots_line"]

# The same settings as ``_Event.to_json``: compact separators, sorted keys, UTF-8 text kept.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)
_encode_str = json.encoder.encode_basestring  # C implementation when available


def _make_encode() -> Callable[[Any], str]:
    # ``JSONEncoder.encode`` builds a C encoder on every call; build it once. Event payloads are
    # validated acyclic JSON, so the circular-reference markers are not needed.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    try:
        c_encode = make(None, _encoder.default, _encode_str, None, ":", ",", True, False, True)
        if "".join(c_encode({"b": [1.5, None, True], "a": "é"}, 0)) != '{"a":"é","b":[1.5,null,true]}':
            return _encoder.encode
    except Exception:  # another interpreter's signature: use the generic path
        return _encoder.encode
    join = "".join

    def encode(value: Any) -> str:
        return join(c_encode(value, 0))

    return encode


_encode = _make_encode()

_CACHE_LIMIT = 4096  # per cache; cleared when full (names, parents and flags repeat a lot)
_strings: dict[str, str] = {}
_parents: dict[int, str] = {}
_attrs: dict[tuple[str, ...], str] = {(): "[]"}
_second = -1
_second_text = ""

_SCOPE_HEAD = '{"atof_version":"' + ATOF_VERSION + '","attributes":'
_MARK_HEAD = '{"atof_version":"' + ATOF_VERSION + '","category":'


def event_line(event: ScopeEvent | MarkEvent) -> str:
    """The event's ATOF 0.1 JSON object on one line (no trailing newline); equals ``event.to_json()``."""
    try:
        t = type(event)
        if t is ScopeEvent:
            return _scope_line(event)  # type: ignore[arg-type]
        if t is MarkEvent:
            return _mark_line(event)  # type: ignore[arg-type]
    except (AttributeError, TypeError):  # an event shape this fast path does not know
        pass
    return event.to_json()


def _scope_line(event: ScopeEvent) -> str:
    attrs = event._attrs
    attrs_text = _attrs.get(attrs)
    if attrs_text is None:
        attrs_text = _remember(_attrs, attrs, _encode(list(attrs)))
    profile = event._profile
    data = event._data
    schema = event._schema
    metadata = event._metadata
    return (
        f"{_SCOPE_HEAD}{attrs_text},"
        f'"category":{_text(event._category)},'
        f'"category_profile":{"null" if profile is None else _encode(profile)},'
        f'"data":{"null" if data is None else _encode(peek(data))},'
        f'"data_schema":{"null" if schema is None else _encode(schema)},'
        f'"kind":"scope",'
        f'"metadata":{"null" if metadata is None else _encode(metadata)},'
        f'"name":{_text(event._name)},'
        f'"parent_uuid":{_parent(event._parent)},'
        f'"scope_category":{_text(event._phase)},'
        f'"timestamp":"{_timestamp(event)}",'
        f'"uuid":"{_uuid(event._id)}"}}'
    )


def _mark_line(event: MarkEvent) -> str:
    category = event._category
    profile = event._profile
    data = event._data
    schema = event._schema
    metadata = event._metadata
    return (
        f"{_MARK_HEAD}{'null' if category is None else _text(category)},"
        f'"category_profile":{"null" if profile is None else _encode(profile)},'
        f'"data":{"null" if data is None else _encode(peek(data))},'
        f'"data_schema":{"null" if schema is None else _encode(schema)},'
        f'"kind":"mark",'
        f'"metadata":{"null" if metadata is None else _encode(metadata)},'
        f'"name":{_text(event._name)},'
        f'"parent_uuid":{_parent(event._parent)},'
        f'"timestamp":"{_timestamp(event)}",'
        f'"uuid":"{_uuid(event._id)}"}}'
    )


def _remember(cache: dict[Any, str], key: Any, text: str) -> str:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = text
    return text


def _text(value: str | None) -> str:
    # JSON string literal of a name / category / phase; those repeat, so cache them.
    if value is None:
        return "null"
    text = _strings.get(value)
    if text is None:
        text = _remember(_strings, value, _encode_str(value))
    return text


def _parent(value: int | None) -> str:
    if value is None:
        return "null"
    text = _parents.get(value)
    if text is None:
        h = f"{value:032x}"
        text = _remember(_parents, value, f'"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"')
    return text


def _uuid(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _timestamp(event: ScopeEvent | MarkEvent) -> str:
    # Same text as ``ids.rfc3339`` (chrono's to_rfc3339): 0, 3, 6 or 9 fractional digits, +00:00.
    # Events of one second share the date-time prefix, so it is formatted once per second.
    global _second, _second_text
    seconds, fraction = divmod(event._ts, 1_000_000_000)
    if seconds != _second:
        t = time.gmtime(seconds)
        _second_text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _second = seconds
    prefix = _second_text
    if fraction == 0:
        return prefix + "+00:00"
    if fraction % 1_000_000 == 0:
        return f"{prefix}.{fraction // 1_000_000:03d}+00:00"
    if fraction % 1_000 == 0:
        return f"{prefix}.{fraction // 1_000:06d}+00:00"
    return f"{prefix}.{fraction:09d}+00:00"


# --- field-name policy ----------------------------------------------------------------------------


def replace_dots(value: Any) -> Any:
    """A copy of ``value`` with ``.`` replaced by ``_`` in every object key, at every depth.

    Collisions resolve deterministically, as the reference does: within one object, dotted keys are
    renamed first, then undotted ones (each group in sorted key order); a name already taken gets the
    first free suffix ``_2``, ``_3``, ... So ``{"service.name": 1, "service_name": 2}`` becomes
    ``{"service_name": 1, "service_name_2": 2}``.
    """
    t = type(value)
    if t is dict:
        keys = sorted(value)
        out: dict[str, Any] = {}
        for key in [k for k in keys if "." in k] + [k for k in keys if "." not in k]:
            name = key.replace(".", "_")
            if name in out:
                suffix = 2
                while f"{name}_{suffix}" in out:
                    suffix += 1
                name = f"{name}_{suffix}"
            out[name] = replace_dots(value[key])
        return out
    if t is list:
        return [replace_dots(item) for item in value]
    return value


def replace_dots_line(line: str) -> str:
    """``line`` (one ATOF JSON object) re-serialised with the ``replace_dots`` policy applied."""
    return _encode(replace_dots(json.loads(line)))
