"""OCI Generative AI chat codec: the GENERIC, COHERE and COHEREV2 request formats.

A request is either a ``ChatDetails`` envelope (``compartmentId``, ``servingMode``, ``chatRequest``) or a
bare ``chatRequest`` body; the body's ``apiFormat`` picks the dialect (anything but ``COHERE`` and
``COHEREV2`` reads as ``GENERIC``). Decoding normalises what the annotation can say and wraps everything
else (images, odd roles, tool definitions, tool choices) as ``oci_genai`` provider-native components.
Encoding decodes the original again and rewrites only what the annotation changed, so untouched provider
fields, ``null`` values and content shapes survive byte for byte at JSON level.

Streaming: OCI sends one JSON event per server-sent event. ``stream_aggregator()`` folds them into the
shape of a non-streamed ``ChatResult`` (see ``OCIStreamAggregator``).
"""

from __future__ import annotations

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.codecs.base import BuiltinCodec, response_json
from nemo_relay._core.codecs.common import as_object
from nemo_relay._core.codecs.oci_request import PROVIDER, annotation_parts, decode_request, encode_request, split_flat
from nemo_relay._core.codecs.oci_response import OCIStreamAggregator, decode_response
from nemo_relay._core.jsonconv import copy_json
from nemo_relay._core.values import LLMRequest

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["OCIGenAIChatCodec", "OCIStreamAggregator"]


class OCIGenAIChatCodec(BuiltinCodec):
    """Codec for OCI Generative AI chat requests and responses (``GENERIC``, ``COHERE``, ``COHEREV2``)."""

    __slots__ = ()

    _relay_builtin_id = "oci_genai"
    provider = PROVIDER

    def decode(self, request: LLMRequest) -> AnnotatedLLMRequest:
        """Decode an OCI chat request; unknown vendor keys land in ``extra`` even when they share a field name."""
        content = request._content if isinstance(request, LLMRequest) else None
        if type(content) is not dict:
            return super().decode(request)  # raises the shared argument errors
        known, extra = decode_request(content)
        # extra is set apart, so a vendor key named like a field does not fill that field
        annotated = AnnotatedLLMRequest._from_codec(known, extra)
        annotated._origin = (type(self), content)
        return annotated

    def decode_json(self, content: JsonObject, headers: JsonObject) -> JsonObject:
        """The annotation JSON of an OCI chat request (envelope or bare ``chatRequest``).

        ``extra`` is flattened in and wins name clashes, exactly as ``AnnotatedLLMRequest._to_json`` does, so
        this is the baseline that ``encode`` compares the edited annotation with.
        """
        known, extra = decode_request(content)
        known.update(extra)
        return known

    def encode(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> LLMRequest:
        """Encode ``annotated`` into a request shaped like ``original``, patching only what changed.

        Reads fields and ``extra`` from the object separately, so a vendor key named like a field (a COHERE
        body with a ``messages`` key, a GENERIC ``metadata``) never hides an edit of that field.
        """
        content = original._content if isinstance(original, LLMRequest) else None
        if not isinstance(annotated, AnnotatedLLMRequest) or type(content) is not dict:
            return super().encode(annotated, original)  # raises the shared argument errors
        if self._pristine(annotated, original):
            return LLMRequest._trusted(as_object(copy_json(original._headers)), content)
        fields, extra = annotation_parts(annotated)
        before_fields, before_extra = decode_request(content)
        patched = encode_request(fields, extra, before_fields, before_extra, as_object(copy_json(content)))
        return LLMRequest._trusted(as_object(copy_json(original._headers)), patched)

    def encode_json(self, annotation: JsonObject, baseline: JsonObject, content: JsonObject) -> JsonValue:
        """``content`` patched where ``annotation`` differs from ``baseline`` (the fresh decode of it).

        Both are flattened JSON forms; a top-level key counts as ``extra`` unless it names a field that OCI
        carries, or another field absent from the baseline (OCI decoding never fills those).
        """
        fields, extra = split_flat(annotation, baseline)
        before_fields, before_extra = split_flat(baseline, baseline)
        return encode_request(fields, extra, before_fields, before_extra, content)

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode an OCI ``ChatResult``; a non-object is kept whole as ``extra["raw"]``, as the reference does.

        Raises:
            ValueError: ``response`` is not JSON-convertible (``Failed to convert to JSON: ...``).
        """
        response = response_json(response)
        if type(response) is not dict:
            return AnnotatedLLMResponse(extra={"raw": copy_json(response)})
        known, extra = decode_response(response)
        return AnnotatedLLMResponse(**known, extra=extra)  # type: ignore[arg-type]  # JSON values, checked there

    def decode_response_json(self, response: JsonObject) -> JsonObject:
        """The annotated-response JSON of an OCI ``ChatResult`` (envelope or bare ``chatResponse``).

        Unlike the event form, the named fields win name clashes here (an unknown ``message.toolPlan`` would
        otherwise replace the message text), so the result always loads with ``AnnotatedLLMResponse._from_json``.
        """
        known, extra = decode_response(response)
        extra.update(known)
        return extra

    def stream_aggregator(self) -> OCIStreamAggregator:
        """A fresh aggregator folding streamed OCI chat events into a final ``ChatResult``."""
        return OCIStreamAggregator()
