"""Helpers every built-in codec shares: JSON comparison and shapes, provider-native components, the patch
primitives of ``encode``, typed field checks for requests and responses, and usage/cost mapping.

Codecs work on JSON values (request content is normalised by ``LLMRequest``, annotation JSON is validated
by the annotated view), so the checks here test plain ``dict``/``list``/``str``/``int``/``float``/``bool``.
Error texts follow the reference's wording; the notation of values inside them comes from ``rustfmt``.
"""

from __future__ import annotations

import json

from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from nemo_relay._core.codecs.rustfmt import RustText
    from nemo_relay._core.types import JsonObject, JsonValue

    JsonEqual = Callable[[object, object], bool]

U64_MAX = 2**64 - 1

# ======================================================================================================
# JSON values
# ======================================================================================================


def json_equality(*, exact_numbers: bool = False, null_is_missing: bool = False) -> JsonEqual:
    """A JSON equality test that, unlike ``==``, tells ``true`` from ``1``.

    ``exact_numbers`` also tells ``1`` from ``1.0`` (serde's view of numbers). With ``null_is_missing`` an
    object member holding ``null`` equals a missing one. The codecs differ on both points, and each choice
    is observable in what an edit rewrites, so each codec keeps its own equality built here.
    """

    def equal(a: Any, b: Any) -> bool:
        kind = type(a)
        if kind is not type(b):
            # Mixed types are equal only as numbers (``1 == 1.0``), and not at all with ``exact_numbers``.
            return (
                not exact_numbers
                and kind is not bool
                and type(b) is not bool
                and kind is not dict
                and kind is not list
                and a == b
            )
        if kind is dict:
            if null_is_missing:
                return all(equal(a.get(key), b.get(key)) for key in a.keys() | b.keys())
            return a.keys() == b.keys() and all(equal(value, b[key]) for key, value in a.items())
        if kind is list:
            return len(a) == len(b) and all(map(equal, a, b))
        return a == b  # type: ignore[no-any-return]  # JSON scalars compare to a bool

    return equal


# Anthropic and Gemini: ``1 == 1.0``, members must match. OpenAI: a null member is a missing one. OCI: serde's
# strict view (``1`` is not ``1.0``).
same_json = json_equality()
json_equal = json_equality(null_is_missing=True)
strict_json_equal = json_equality(exact_numbers=True)


def compact_json(value: JsonValue) -> str:
    """Compact JSON with sorted keys and raw non-ASCII text, as the reference serialises its ordered maps."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# serde_json's recursion limit: provider JSON text nested this deep is not JSON to the reference (and would
# exhaust Python's recursion in ``json.loads`` a little further on).
JSON_TEXT_DEPTH_LIMIT = 128


def loads(text: str, **options: Any) -> JsonValue:
    """``json.loads(text, **options)``, refusing with ``ValueError`` text that nests arrays and objects
    ``JSON_TEXT_DEPTH_LIMIT`` deep, as the reference's parser does."""
    if text.count("[") + text.count("{") >= JSON_TEXT_DEPTH_LIMIT and _nests(text, JSON_TEXT_DEPTH_LIMIT):
        raise ValueError("recursion limit exceeded")
    return json.loads(text, **options)  # type: ignore[no-any-return]


def _nests(text: str, limit: int) -> bool:
    # Whether brackets outside string literals reach ``limit`` levels (only run when there are that many).
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "[" or char == "{":
            depth += 1
            if depth >= limit:
                return True
        elif char == "]" or char == "}":
            depth -= 1
    return False


def parse_json_or_text(text: str, *, finite: bool) -> JsonValue:
    """``text`` parsed as JSON when it is JSON (``NaN``/``Infinity`` are not), else ``text`` itself.

    With ``finite`` a number that overflows to infinity (``1e999``) also leaves the text unparsed; so does
    text nested ``JSON_TEXT_DEPTH_LIMIT`` deep (see ``loads``).
    """
    try:
        if finite:
            return loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        return loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)  # NaN / Infinity are not JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:
        raise ValueError(text)
    return value


def is_number(value: object) -> bool:
    """A JSON number (``bool`` excluded)."""
    return type(value) is int or type(value) is float


def as_float(value: JsonValue) -> JsonValue:
    """A JSON number as a float (the annotation stores sampling params as floats); anything else unchanged."""
    return float(value) if type(value) is int or type(value) is float else value


def as_object(value: JsonValue) -> JsonObject:
    """``value`` when it is a JSON object, else an empty one."""
    return value if type(value) is dict else {}


def as_list(value: JsonValue) -> list[JsonValue]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if type(value) is list else []


def objects(value: JsonValue) -> list[JsonObject]:
    """The JSON objects of an array (anything else gives an empty list)."""
    return [item for item in value if type(item) is dict] if type(value) is list else []


def copy_object(value: JsonObject) -> JsonObject:
    """A deep copy of a JSON object."""
    return {key: copy_json(item) for key, item in value.items()}


# ======================================================================================================
# The annotation
# ======================================================================================================

# The first-class fields of the annotation's JSON form; every other top-level key is flattened ``extra``.
ANNOTATION_FIELDS = frozenset(
    (
        "messages", "instructions", "model", "params", "tools", "tool_choice", "api_specific", "store",
        "previous_response_id", "truncation", "reasoning", "include", "user", "metadata", "service_tier",
        "parallel_tool_calls", "max_output_tokens", "max_tool_calls", "top_logprobs", "stream",
    )
)  # fmt: skip


def extra_of(annotation: JsonObject) -> JsonObject:
    """The flattened ``extra`` entries of an annotation JSON object."""
    return {key: value for key, value in annotation.items() if key not in ANNOTATION_FIELDS}


def provider_native(provider: str, kind: JsonValue, value: JsonValue, tag: str = "") -> JsonObject:
    """A provider-native component carrying ``value`` verbatim; a non-string ``kind`` reads ``unknown``.

    ``tag`` names the discriminator: ``role`` for messages, ``type`` for parts and tools, none for tool choices.
    """
    native: JsonObject = {tag: "provider_native"} if tag else {}
    native["provider"] = provider
    native["kind"] = kind if type(kind) is str else "unknown"
    native["value"] = value
    return native


def check_api(api_specific: JsonValue, tag: str, label: str) -> JsonObject:
    """The annotation's ``api_specific`` object (empty when unset), refusing one tagged for another API."""
    if api_specific is None:
        return {}
    if type(api_specific) is not dict or api_specific.get("api") != tag:
        raise InvalidArgumentError(f"api_specific provider does not match {label}")
    return api_specific


def edited_foreign_fields(annotation: JsonObject, baseline: JsonObject, names: Sequence[str]) -> list[str]:
    """Fields the provider cannot carry that the annotation sets (a baseline value came from the body's extra)."""
    edited = []
    for name in names:
        value = annotation.get(name)
        if name in baseline:
            if not same_json(value, baseline[name]):
                edited.append(name)
        elif value is not None:
            edited.append(name)
    return edited


# ======================================================================================================
# Patching the original body
# ======================================================================================================


def set_or_drop(body: JsonObject, key: str, value: JsonValue) -> None:
    """Write ``value`` under ``key``, or remove the key when the annotation cleared it (``None``)."""
    if value is None:
        body.pop(key, None)
    else:
        body[key] = value


def param_value(key: str, value: JsonValue) -> JsonValue:
    """A ``params`` entry in wire form: a copy, sampling numbers as floats, a lone ``stop`` string as a list."""
    if key in ("temperature", "top_p"):
        value = as_float(value)
    elif type(value) is str and key == "stop":
        value = [value]
    return copy_json(value)


def patch_extra(body: JsonObject, new: JsonObject, old: JsonObject, equal: JsonEqual) -> None:
    """Apply edits of ``extra`` (unknown provider fields): dropped keys are removed, changed ones written."""
    for key in old:
        if key not in new:
            body.pop(key, None)
    for key, value in new.items():
        if key not in old or not equal(value, old[key]):
            body[key] = copy_json(value)


def match_by_value(
    new: Sequence[JsonValue], old: Sequence[JsonValue], equal: JsonEqual
) -> tuple[list[int | None], list[int]]:
    """Line up array items by value, the only identity they have.

    Returns, for each new item, the index of the first still-unclaimed equal ``old`` item (None when there
    is none), and the indexes of the ``old`` items nothing claimed.
    """
    used: set[int] = set()
    matches: list[int | None] = []
    for item in new:
        found = next((i for i, o in enumerate(old) if i not in used and equal(item, o)), None)
        if found is not None:
            used.add(found)
        matches.append(found)
    return matches, [i for i in range(len(old)) if i not in used]


def multiple_edits_error() -> InvalidArgumentError:
    """Several array items edited at once cannot be lined up with the originals they replace: refused."""
    return InvalidArgumentError(
        "cannot safely preserve provider fields for multiple edited array items without stable identities"
    )


# ======================================================================================================
# Typed fields
# ======================================================================================================


class FieldReader:
    """Reads optional typed fields of one request body; a wrong type fails as ``<label> <field> must be ...``.

    ``null`` and a missing key both read as ``None``, matching how the reference treats them.
    """

    __slots__ = ("_body", "_label")

    def __init__(self, body: JsonObject, label: str) -> None:
        self._body = body
        self._label = label

    def fail(self, key: str, expected: str) -> NoReturn:
        """Raise the reference's error for ``key`` holding something other than ``expected``."""
        raise InvalidArgumentError(f"{self._label} {key} must be {expected} or null")

    def read(self, key: str, kind: str) -> JsonValue:
        """The value of ``key`` checked as ``kind`` (``string``, ``boolean``, ``number`` ...)."""
        return getattr(self, kind)(key)  # type: ignore[no-any-return]

    def string(self, key: str) -> str | None:
        """A string or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, str):
            return value
        self.fail(key, "a string")

    def boolean(self, key: str) -> bool | None:
        """A boolean or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail(key, "a boolean")

    def number(self, key: str) -> float | None:
        """A number (as a float, like the reference's f64) or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        self.fail(key, "a number")

    def uint(self, key: str) -> int | None:
        """A non-negative integer or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX:
            return value
        self.fail(key, "a non-negative integer")

    def integer(self, key: str) -> int | None:
        """An integer or ``None``."""
        value = self._body.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.fail(key, "an integer")

    def object(self, key: str) -> JsonObject | None:
        """An object or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.fail(key, "an object")

    def array(self, key: str) -> list[JsonValue] | None:
        """An array or ``None``."""
        value = self._body.get(key)
        if value is None or isinstance(value, list):
            return value
        self.fail(key, "an array")

    def raw(self, key: str) -> JsonValue:
        """Any value, ``null`` kept (fields the reference stores untyped)."""
        return self._body.get(key)


class ResponseShape:
    """Checks a provider response the way the reference's typed decode does, with its error texts.

    Failures are ``InternalError("<label> response decode: ...")``; values are named in ``text``'s notation.
    """

    __slots__ = ("_label", "_text")

    def __init__(self, label: str, text: RustText) -> None:
        self._label = label
        self._text = text

    def fail(self, detail: str) -> NoReturn:
        """Raise the reference's response-decode error."""
        raise InternalError(f"{self._label} response decode: {detail}")

    def mismatch(self, value: JsonValue, expected: str) -> NoReturn:
        """Raise "invalid type: <value>, expected <expected>"."""
        self.fail(self._text.invalid_type(value, expected))

    def object(self, response: JsonValue, expected: str) -> None:
        """Refuse a JSON response that is not an object (``expected`` is serde's name of the response type)."""
        if response is None or type(response) in (bool, int, float, str, list):
            self.mismatch(response, expected)

    def string(self, value: JsonValue) -> str | None:
        """A string or ``None``."""
        if value is None or isinstance(value, str):
            return value
        self.mismatch(value, "a string")

    def copy_strings(self, source: JsonObject, keys: Sequence[str], into: JsonObject) -> None:
        """Copy the string fields ``keys`` of ``source`` into ``into``, checked in order; unset ones are skipped."""
        for key in keys:
            value = self.string(source.get(key))
            if value is not None:
                into[key] = value

    def boolean(self, value: JsonValue) -> bool | None:
        """A boolean or ``None``."""
        if value is None or isinstance(value, bool):
            return value
        self.mismatch(value, "a boolean")

    def u64(self, value: JsonValue) -> int | None:
        """A token count: a non-negative integer or ``None``."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= U64_MAX:
                return value
            self.fail(f"invalid value: integer `{value}`, expected u64")
        self.mismatch(value, "u64")

    def f64(self, value: JsonValue) -> float | None:
        """An amount: a number (as a float) or ``None``."""
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        self.mismatch(value, "f64")

    def struct(self, value: JsonValue, name: str) -> JsonObject | None:
        """An object or ``None``."""
        if value is None or isinstance(value, dict):
            return value
        self.mismatch(value, f"struct {name}")

    def sequence(self, value: JsonValue) -> list[JsonValue] | None:
        """An array or ``None``."""
        if value is None or isinstance(value, list):
            return value
        self.mismatch(value, "a sequence")


# ======================================================================================================
# Usage and cost
# ======================================================================================================

COST_AMOUNTS = ("input", "output", "cache_read", "cache_write")
COST_LABELS = ("pricing_provider", "pricing_model", "pricing_as_of", "pricing_source")


def cost_breakdown(cost: JsonObject, shape: ResponseShape) -> tuple[float | None, dict[str, float], dict[str, str]]:
    """A provider cost object checked field by field: ``(total, amounts, labels)``.

    ``total`` is the reported one, else the sum of the amounts (added in a fixed order, so float sums are
    stable), else None. ``amounts`` and ``labels`` (``currency`` included) hold the fields that are set.
    """
    total = shape.f64(cost.get("total"))
    amounts: dict[str, float] = {}
    for key in COST_AMOUNTS:
        amount = shape.f64(cost.get(key))
        if amount is not None:
            amounts[key] = amount
    labels: dict[str, str] = {}
    for key in ("currency", *COST_LABELS):
        label = shape.string(cost.get(key))
        if label is not None:
            labels[key] = label
    if total is None and amounts:
        total = 0.0
        for amount in amounts.values():
            total += amount
    return total, amounts, labels


def usage_json(
    prompt: int | None,
    completion: int | None,
    total: int | None,
    *,
    cache_read: int | None = None,
    cache_write: int | None = None,
    cost: JsonObject | None = None,
) -> JsonObject:
    """The annotated usage object (the package's one convention: ``prompt`` includes cached tokens)."""
    usage: JsonObject = {}
    for key, value in (
        ("prompt_tokens", prompt),
        ("completion_tokens", completion),
        ("total_tokens", total),
        ("cache_read_tokens", cache_read),
        ("cache_write_tokens", cache_write),
    ):
        if value is not None:
            usage[key] = value
    if cost is not None:
        usage["cost"] = cost
    return usage
