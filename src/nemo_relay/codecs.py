"""Provider codecs: translate provider payloads to and from one annotated view.

A request codec (``LlmCodec``) decodes a provider request into an ``AnnotatedLLMRequest`` and encodes
an edited annotation back; a response codec (``LlmResponseCodec``) decodes a provider response into
an ``AnnotatedLLMResponse``. Pass them to ``llm.execute(..., codec=, response_codec=)``: request
intercepts then edit the annotation instead of raw JSON, and events carry the annotated views.

The built-in codecs (``OpenAIChatCodec``, ``OpenAIResponsesCodec``, ``AnthropicMessagesCodec``,
``OCIGenAIChatCodec``, ``GeminiGenerateContentCodec``) are lossless: ``encode(decode(x), x)`` gives
``x`` back, and an edit rewrites only the fields it touched. Each satisfies both protocols. Any other
object with the right methods works too.

Usage convention (every built-in response codec, whatever the provider reports): ``prompt_tokens``
counts every input token, cached ones included; ``cache_read_tokens`` and ``cache_write_tokens`` are
that cached part, reported separately (never add them again); ``total_tokens`` is prompt plus
completion. ATIF, OpenTelemetry GenAI and OpenInference count the same way. Anthropic reports cache
tokens outside ``input_tokens``, so its codec adds them back.

Each built-in codec also has ``stream_aggregator()``: feed it the streamed chunks (``add(chunk)``) and
``result()`` gives the provider's final response body, ready for ``decode_response``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from nemo_relay._core.annotated import AnnotatedLLMRequest, AnnotatedLLMResponse
from nemo_relay._core.codecs.anthropic import AnthropicMessagesCodec
from nemo_relay._core.codecs.gemini import GeminiGenerateContentCodec
from nemo_relay._core.codecs.oci import OCIGenAIChatCodec
from nemo_relay._core.codecs.openai_chat import OpenAIChatCodec
from nemo_relay._core.codecs.openai_responses import OpenAIResponsesCodec
from nemo_relay._core.types import JsonValue
from nemo_relay._core.values import LLMRequest

__all__ = [
    "AnnotatedLLMRequest",
    "AnthropicMessagesCodec",
    "GeminiGenerateContentCodec",
    "LlmCodec",
    "LlmResponseCodec",
    "OCIGenAIChatCodec",
    "OpenAIChatCodec",
    "OpenAIResponsesCodec",
]


@runtime_checkable
class LlmCodec(Protocol):
    """Translates provider requests to ``AnnotatedLLMRequest`` and back."""

    def decode(self, request: LLMRequest) -> AnnotatedLLMRequest:
        """Decode ``request`` into its annotated view."""
        ...

    def encode(self, annotated: AnnotatedLLMRequest, original: LLMRequest) -> LLMRequest:
        """Encode ``annotated`` into a provider request shaped like ``original``."""
        ...


@runtime_checkable
class LlmResponseCodec(Protocol):
    """Translates provider responses to ``AnnotatedLLMResponse``."""

    def decode_response(self, response: JsonValue) -> AnnotatedLLMResponse:
        """Decode ``response`` into its annotated view."""
        ...
