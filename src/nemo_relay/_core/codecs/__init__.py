"""Built-in provider codecs: lossless translation between provider payloads and the annotated view.

Each codec works on plain JSON (``dict``) forms; ``base.BuiltinCodec`` turns them into
``AnnotatedLLMRequest`` / ``AnnotatedLLMResponse`` objects and back. Modules: ``openai_chat``,
``openai_responses``, ``anthropic``, ``gemini``, ``oci`` (one provider each) and ``common`` (helpers
shared by several).
"""
