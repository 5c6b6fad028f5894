"""The shape every built-in codec shares: JSON-level hooks wrapped into the public codec methods.

A codec decodes a provider request (``content`` + ``headers``) into the annotation's fields and its
``extra`` (the unknown body keys), kept apart: a body key named like an annotation field (an Anthropic body
with an ``instructions`` key) is ``extra`` and never fills that field, as in the reference. It encodes an
edited annotation back by *patching* the original content: it decodes the original again (the baseline),
compares field by field and ``extra`` key by key, and rewrites only what changed, so unknown and ``null``
provider fields survive untouched and ``encode(decode(x), x).content == x.content``.

``decode_json``/``encode_json`` are the same operations on the flat JSON form (``extra`` flattened in, as
``AnnotatedLLMRequest._to_json`` records it on events).
"""

from __future__ import annotations

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.codecs.common import ANNOTATION_FIELDS
from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json, plain_size, to_json
from nemo_relay._core.values import LLMRequest

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet
    from typing import Any, ClassVar

    from nemo_relay._core.codecs.common import ResponseShape
    from nemo_relay._core.types import JsonValue

    JsonObject = dict[str, JsonValue]


class BuiltinCodec:
    """Base of the built-in codecs (request codec and response codec in one object)."""

    __slots__ = ()

    _relay_builtin_id: ClassVar[str] = ""
    provider: ClassVar[str] = ""  # the provider name used by provider-native components
    # A JSON response that is not an object fails as the reference's typed decode words it: checked by
    # ``_response_shape`` against ``_response_type`` (serde's name of the provider response type).
    _response_shape: ClassVar[ResponseShape | None] = None
    _response_type: ClassVar[str] = ""

    # --- public codec protocol -----------------------------------------------------------------------------

    def decode(self, request: LLMRequest) -> AnnotatedLLMRequest:
        """Decode a provider request into an ``AnnotatedLLMRequest``."""
        _expect_request(request)
        content = _content_object(request._content, self)
        fields, extra = self.decode_parts(content, request._headers)
        annotated = AnnotatedLLMRequest._from_codec(fields, extra)
        annotated._origin = (type(self), content)
        return annotated

    def encode(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> LLMRequest:
        """Encode an annotation into a request shaped like ``original``, patching only what changed."""
        if not isinstance(annotated, AnnotatedLLMRequest):
            raise TypeError(
                f"argument 'annotated': '{type(annotated).__name__}' object is not an instance of 'AnnotatedLLMRequest'"
            )
        _expect_request(original)
        if self._pristine(annotated, original):
            return LLMRequest._trusted(copy_json(original._headers), original._content)  # type: ignore[arg-type]
        content = _content_object(original._content, self)
        before_fields, before_extra = self.decode_parts(content, original._headers)
        # Fields and extra are read apart: an extra key named like a field must not hide an edit of the field.
        fields: JsonObject = copy_json(annotated._data)  # type: ignore[assignment]
        extra: JsonObject = copy_json(annotated._extra)  # type: ignore[assignment]
        patched = self.encode_parts(fields, extra, before_fields, before_extra, copy_json(content))  # type: ignore[arg-type]
        return LLMRequest._trusted(copy_json(original._headers), patched)  # type: ignore[arg-type]

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode a provider response into an ``AnnotatedLLMResponse``.

        Raises:
            ValueError: ``response`` is not JSON-convertible (``Failed to convert to JSON: ...``).
            RuntimeError: the response does not have the provider's shape.
        """
        return self._decode_converted(response_json(response))

    def _decode_converted(self, response: JsonValue) -> AnnotatedLLMResponse:
        """``decode_response`` of a response that is plain JSON already (what the managed pipeline records)."""
        if type(response) is not dict:
            if self._response_shape is not None:
                self._response_shape.object(response, self._response_type)
            raise InvalidArgumentError(f"{self._label()} response must be a JSON object, got {type(response).__name__}")
        fields, extra = self.decode_response_parts(response)
        return AnnotatedLLMResponse._from_parts(fields, extra)

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The flat annotation JSON for a provider request body (``extra`` flattened in, winning name clashes)."""
        fields, extra = self.decode_parts(content, headers)
        fields.update(extra)
        return fields

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The flat annotated-response JSON for a provider response body (the named fields win name clashes)."""
        fields, extra = self.decode_response_parts(response)
        extra.update(fields)
        return extra

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched where the flat ``annotation`` differs from the flat ``baseline`` (its decode).

        A top-level key is ``extra`` unless it names an annotation field that is not an unknown body key of
        ``content`` (the flat form cannot tell more).
        """
        unknown = self.decode_parts(content, {})[1].keys()
        fields, extra = _split_flat(annotation, unknown)
        before_fields, before_extra = _split_flat(baseline, unknown)
        return self.encode_parts(fields, extra, before_fields, before_extra, content)

    # --- hooks each codec implements -------------------------------------------------------------------------

    def decode_parts(self, content: JsonObject, headers: JsonObject) -> tuple[JsonObject, JsonObject]:
        """``(fields, extra)`` for a provider request body: the annotation's fields in JSON form, and every body
        key the codec does not map (values may be shared with ``content``; nothing changes them in place)."""
        raise NotImplementedError

    def encode_parts(
        self,
        fields: JsonObject,
        extra: JsonObject,
        before_fields: JsonObject,
        before_extra: JsonObject,
        content: JsonObject,
    ) -> JsonValue:
        """``content`` (a private copy of the original body) patched where the annotation's ``fields``/``extra``
        differ from ``before_fields``/``before_extra`` (the decode of the original)."""
        raise NotImplementedError

    def decode_response_parts(self, response: JsonObject) -> tuple[JsonObject, JsonObject]:
        """``(fields, extra)`` for a provider response body: the annotated fields in JSON form, and the
        response's unknown top-level keys (also when named like a field)."""
        raise NotImplementedError

    def stream_aggregator(self) -> Any:
        """A fresh aggregator: ``add(chunk)`` per streamed chunk, ``result()`` gives the final response JSON."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------------------------------

    def _pristine(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> bool:
        """Whether ``annotated`` is this codec's unedited decode of ``original``: encoding it gives ``original``.

        The common case in a managed call (no intercept edited the view) then costs nothing; the lossless
        contract ``encode(decode(x), x) == x`` makes the shortcut exact. A request's content is never changed in
        place, so identity is enough.
        """
        origin = annotated._origin
        return origin is not None and origin[0] is type(self) and origin[1] is original._content

    @classmethod
    def _label(cls) -> str:
        return cls.__name__.removesuffix("Codec")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _expect_request(request: object) -> None:
    if not isinstance(request, LLMRequest):
        raise TypeError(f"argument 'request': '{type(request).__name__}' object is not an instance of 'LLMRequest'")


def response_json(response: object) -> JsonValue:
    """``response`` as plain JSON: converted (raising ``JsonConversionError``) unless it already is.

    The managed pipeline hands over converted JSON, which only costs the check; a direct caller may pass
    any Python value, which the reference converts before decoding.
    """
    return response if plain_size(response) >= 0 else to_json(response)  # type: ignore[return-value]


def _split_flat(flat: JsonObject, unknown: AbstractSet[str]) -> tuple[JsonObject, JsonObject]:
    fields: JsonObject = {}
    extra: JsonObject = {}
    for key, value in flat.items():
        if key in ANNOTATION_FIELDS and key not in unknown:
            fields[key] = value
        else:
            extra[key] = value
    return fields, extra


def _content_object(content: JsonValue, codec: BuiltinCodec) -> JsonObject:
    if type(content) is not dict:
        raise InternalError("request content is not an object")
    return content
