"""The shape every built-in codec shares: JSON-level hooks wrapped into the public codec methods.

A codec decodes a provider request (``content`` + ``headers``) into the annotation's JSON form, and
encodes an edited annotation back by *patching* the original content: it decodes the original again
(the baseline), compares field by field, and rewrites only what changed, so unknown and ``null``
provider fields survive untouched and ``encode(decode(x), x).content == x.content``.
"""

from __future__ import annotations

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.errors import InternalError, InvalidArgumentError
from nemo_relay._core.jsonconv import copy_json
from nemo_relay._core.values import LLMRequest

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
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
        annotated = AnnotatedLLMRequest._from_codec(self.decode_json(content, request._headers))
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
        baseline = self.decode_json(content, original._headers)
        patched = self.encode_json(annotated._to_json(), baseline, copy_json(content))  # type: ignore[arg-type]
        return LLMRequest._trusted(copy_json(original._headers), patched)  # type: ignore[arg-type]

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode a provider response into an ``AnnotatedLLMResponse``."""
        if type(response) is not dict:
            if self._response_shape is not None:
                self._response_shape.object(response, self._response_type)
            raise InvalidArgumentError(f"{self._label()} response must be a JSON object, got {type(response).__name__}")
        return AnnotatedLLMResponse._from_json(self.decode_response_json(response))

    # --- hooks each codec implements -------------------------------------------------------------------------

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON for a provider request body."""
        raise NotImplementedError

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` (a private copy of the original body) patched where ``annotation`` differs from ``baseline``."""
        raise NotImplementedError

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON for a provider response body."""
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


def _content_object(content: JsonValue, codec: BuiltinCodec) -> JsonObject:
    if type(content) is not dict:
        raise InternalError("request content is not an object")
    return content
