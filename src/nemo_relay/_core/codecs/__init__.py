"""Built-in provider codecs: lossless translation between provider payloads and the annotated view.

Each codec works on plain JSON (``dict``) forms; ``base.BuiltinCodec`` turns them into
``AnnotatedLLMRequest`` / ``AnnotatedLLMResponse`` objects and back. One module per provider holds its codec
class (``openai_chat``, ``openai_responses``, ``anthropic``, ``gemini``, ``oci``); the larger ones keep their
request and response sides in siblings (``gemini_request``/``gemini_encode``/``gemini_response``,
``oci_request``/``oci_response``). Shared by several: ``common`` (JSON comparison, patch primitives, typed
field checks, usage and cost), ``openai_common`` (the two OpenAI codecs) and ``rustfmt`` (the reference's
Rust ``Debug``/serde notation in error texts).
"""
