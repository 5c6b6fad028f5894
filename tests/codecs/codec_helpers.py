"""Helpers the codec tests share: fixture files, decode/encode shortcuts, and the vocabulary of edit tables.

Imported like ``roundtrip_check`` (``from codec_helpers import ...``); each test module binds them to its own
codec and fixture directory.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from roundtrip_check import encode_unedited

from nemo_relay import AnnotatedLLMRequest, LLMRequest

Body = dict[str, Any]


class Fixtures:
    """The JSON fixtures of one provider, under ``fixtures/<provider>``."""

    def __init__(self, provider: str) -> None:
        self.root = Path(__file__).parent / "fixtures" / provider

    def load(self, name: str) -> Any:
        """One fixture file."""
        return json.loads((self.root / f"{name}.json").read_text(encoding="utf-8"))

    def names(self, prefix: str) -> list[str]:
        """Fixture names starting with ``prefix``."""
        return sorted(path.stem for path in self.root.glob(f"{prefix}*.json"))

    def edit_cases(self) -> list[Any]:
        """``pytest.param(name, edit)`` for each edit recorded in the ``request_*`` fixtures."""
        return [
            pytest.param(name, edit, id=f"{name}: {edit['name']}")
            for name in self.names("request_")
            for edit in self.load(name)["edits"]
        ]


def decode(codec: Any, content: Any) -> AnnotatedLLMRequest:
    """``codec``'s annotation of a request with ``content`` and no headers."""
    return codec.decode(LLMRequest({}, content))  # type: ignore[no-any-return]


def encode_edit(codec: Any, content: Body, **changes: Any) -> Any:
    """Decode ``content``, assign ``changes`` to the annotation, encode it back; returns the new content."""
    original = LLMRequest({}, content)
    annotated = codec.decode(original)
    for name, value in changes.items():
        setattr(annotated, name, value)
    return codec.encode(annotated, original).content


def check_recorded_edit(codec: Any, content: Body, edit: dict[str, Any]) -> None:
    """An edit recorded in a fixture (``set``) encodes to the recorded ``content``, or fails with its ``error``."""
    if "error" in edit:
        with pytest.raises(RuntimeError) as info:
            encode_edit(codec, content, **edit["set"])
        assert str(info.value) == edit["error"]
    else:
        assert encode_edit(codec, content, **edit["set"]) == edit["content"]


def roundtrip(codec: Any, headers: dict[str, Any], body: Body, edit: Callable[[Any], None] | None = None) -> Any:
    """Decode ``body``, apply ``edit`` to the annotation, encode it back; returns the new content.

    Without ``edit`` both encode paths run (see ``roundtrip_check``).
    """
    request = LLMRequest(headers, copy.deepcopy(body))
    if edit is None:
        return encode_unedited(codec, request).content
    annotated = codec.decode(request)
    edit(annotated)
    return codec.encode(annotated, request).content


# --- edit tables -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EditCase:
    """An edit applied to a fixture's annotation and the provider body it must produce."""

    name: str
    fixture: str
    edit: Callable[[Any], None]
    expected: Callable[[Body], Body]  # the original body, modified to what encode must return


@dataclass(frozen=True)
class EncodeErrorCase:
    """An edit the codec must refuse, and the exact error text."""

    name: str
    fixture: str
    edit: Callable[[Any], None]
    message: str


def update_message(index: int, change: Callable[[Any], None]) -> Callable[[Any], None]:
    """Edit: change one message in place."""

    def edit(annotated: Any) -> None:
        messages = annotated.messages
        change(messages[index])
        annotated.messages = messages

    return edit


def change_messages(change: Callable[[list[Any]], list[Any]]) -> Callable[[Any], None]:
    """Edit: rewrite the message list."""

    def edit(annotated: Any) -> None:
        annotated.messages = change(annotated.messages)

    return edit


def assign(**values: Any) -> Callable[[Any], None]:
    """Edit: assign annotation attributes."""

    def edit(annotated: Any) -> None:
        for key, value in values.items():
            setattr(annotated, key, value)

    return edit


def patched(change: Callable[[Body], Any]) -> Callable[[Body], Body]:
    """Expected body: the original with ``change`` applied."""

    def expected(body: Body) -> Body:
        body = copy.deepcopy(body)
        change(body)
        return body

    return expected
