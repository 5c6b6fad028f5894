"""The no-edit round trip, checked on both of a built-in codec's encode paths.

``encode`` skips the patch when handed its own unedited decode of the very same request (the result is
then the original by the lossless contract). Every no-edit test therefore also encodes against an equal
copy of the request, which takes the full diff-and-patch path, and requires both to agree.
"""

from __future__ import annotations

from typing import Any

from nemo_relay import LLMRequest


def encode_unedited(codec: Any, request: LLMRequest) -> LLMRequest:
    """``codec.encode(codec.decode(request), request)`` through the patch path; checks the shortcut agrees."""
    annotated = codec.decode(request)
    shortcut = codec.encode(annotated, request)
    patched = codec.encode(annotated, LLMRequest(request.headers, request.content))  # equal, not identical
    assert patched.content == shortcut.content and patched.headers == shortcut.headers
    return patched  # type: ignore[no-any-return]
