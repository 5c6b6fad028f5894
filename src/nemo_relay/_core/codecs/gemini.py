"""The built-in Gemini ``generateContent`` codec (Google AI / Vertex AI, camelCase REST bodies).

Request side: ``systemInstruction`` becomes a leading ``system`` message, ``contents`` become
``user``/``assistant`` messages (``functionCall`` parts become ``tool_calls``, each ``functionResponse`` a
``tool`` message whose content is the compact JSON ``response``), ``generationConfig`` feeds ``params``, and
``functionDeclarations`` become function tools. Whatever has no annotation slot (inline data, code execution,
search tools, ...) travels as a ``provider_native`` component tagged ``gemini``; thought parts are hidden.

Encoding patches the original body. Edited messages are lined up with the original ``contents`` items
(common prefix and suffix, then one to one when the edited stretch keeps its length) and laid over them,
so provider-only data on an edited item survives: thought parts, ``thoughtSignature`` on text and
``functionCall`` parts, native parts under a plain-text edit, and the ``name`` of ``functionResponse``
parts. Unmatched messages become fresh items. These rules, quirks included, follow the reference.

Response side: the first candidate gives ``message``/``tool_calls``/``finish_reason``; ``usageMetadata`` gives
``usage`` (``promptTokenCount`` already includes cached tokens; ``cachedContentTokenCount`` is the cache read).
"""

from __future__ import annotations

from nemo_relay._core.codecs.base import BuiltinCodec
from nemo_relay._core.codecs.gemini_encode import encode_request
from nemo_relay._core.codecs.gemini_request import PROVIDER, decode_request
from nemo_relay._core.codecs.gemini_response import SHAPE, GeminiStreamAggregator, decode_response

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonObject, JsonValue

__all__ = ["GeminiGenerateContentCodec", "GeminiStreamAggregator"]


class GeminiGenerateContentCodec(BuiltinCodec):
    """Request and response codec for the Gemini ``generateContent`` API."""

    __slots__ = ()

    _relay_builtin_id = "gemini_generate_content"
    provider = PROVIDER
    _response_shape = SHAPE
    _response_type = "struct RawGeminiGenerateContentResponse"

    def decode_parts(self, content: JsonObject, headers: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotation fields and ``extra`` of a generateContent request body (``headers`` are not consulted)."""
        return decode_request(content)

    def encode_parts(
        self,
        fields: JsonObject,
        extra: JsonObject,
        before_fields: JsonObject,
        before_extra: JsonObject,
        content: JsonObject,
    ) -> JsonValue:
        """``content`` patched wherever the annotation differs from the decode of ``content``."""
        return encode_request(fields, extra, before_fields, before_extra, content)

    def decode_response_parts(self, response: JsonObject) -> tuple[JsonObject, JsonObject]:
        """The annotated fields and the unknown top-level keys of a generateContent response body."""
        return decode_response(response)

    def stream_aggregator(self) -> GeminiStreamAggregator:
        """A fresh aggregator folding streamGenerateContent chunks into one response body."""
        return GeminiStreamAggregator()
