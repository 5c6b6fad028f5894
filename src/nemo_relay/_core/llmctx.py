"""Context objects that LLM sanitizers receive: which codec (if any) shaped the payload, and access to it."""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from typing import Any

    from nemo_relay._core.types import JsonValue
    from nemo_relay._core.values import LLMRequest


class LlmCodecIdentity:
    """Which codec is active: ``kind`` is ``none``, ``builtin``, ``runtime`` or ``opaque``; ``id`` names built-ins."""

    __slots__ = ("_kind", "_id")

    def __init__(self, kind: str, id: str | None = None) -> None:
        self._kind = kind
        self._id = id

    @property
    def kind(self) -> str:
        """``"none"``, ``"builtin"``, ``"runtime"`` or ``"opaque"`` (a user-supplied Python codec)."""
        return self._kind

    @property
    def id(self) -> str | None:
        """Codec id for built-in and runtime codecs (``openai_chat``, ``anthropic_messages`` ...)."""
        return self._id

    def __repr__(self) -> str:
        return f"LlmCodecIdentity(kind={self._kind!r}, id={self._id!r})"


NO_CODEC = LlmCodecIdentity("none")


def identity_of(codec: object) -> LlmCodecIdentity:
    """Identity of a codec object (built-ins declare ``codec_id``; anything else is opaque)."""
    if codec is None:
        return NO_CODEC
    builtin = getattr(type(codec), "_relay_builtin_id", None)
    if isinstance(builtin, str):
        return LlmCodecIdentity("builtin", builtin)
    return LlmCodecIdentity("opaque")


class LlmSanitizeRequestCodec:
    """The active request codec, as seen from a request sanitizer."""

    __slots__ = ("_codec",)

    def __init__(self, codec: Any) -> None:
        self._codec = codec

    def decode(self, request: LLMRequest) -> Any:
        """Decode a provider request into an ``AnnotatedLLMRequest``."""
        return self._codec.decode(request)

    def encode(self, annotated: Any, original: LLMRequest) -> LLMRequest:
        """Encode an annotation back into a provider request shaped like ``original``."""
        return self._codec.encode(annotated, original)  # type: ignore[no-any-return]


class LlmSanitizeResponseCodec:
    """The active response codec, as seen from a response sanitizer."""

    __slots__ = ("_codec",)

    def __init__(self, codec: Any) -> None:
        self._codec = codec

    def decode_response(self, response: JsonValue) -> Any:
        """Decode a provider response into an ``AnnotatedLLMResponse``."""
        return self._codec.decode_response(response)


class _SanitizeContext:
    __slots__ = ("_codec", "_identity")

    def __init__(self, codec: object = None) -> None:
        self._codec = codec
        self._identity = identity_of(codec)

    @property
    def codec(self) -> LlmCodecIdentity:
        """Identity of the codec that shaped the payload."""
        return self._identity


class LlmSanitizeRequestContext(_SanitizeContext):
    """Second argument of an LLM request sanitizer."""

    __slots__ = ()

    def resolve_codec(self) -> LlmSanitizeRequestCodec | None:
        """The active request codec, or None when the call has none."""
        return None if self._codec is None else LlmSanitizeRequestCodec(self._codec)

    def __repr__(self) -> str:
        return f"LlmSanitizeRequestContext(codec={self._identity!r})"


class LlmSanitizeResponseContext(_SanitizeContext):
    """Second argument of an LLM response sanitizer."""

    __slots__ = ()

    def resolve_codec(self) -> LlmSanitizeResponseCodec | None:
        """The active response codec, or None when the call has none."""
        return None if self._codec is None else LlmSanitizeResponseCodec(self._codec)

    def __repr__(self) -> str:
        return f"LlmSanitizeResponseContext(codec={self._identity!r})"
