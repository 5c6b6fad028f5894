"""ATIF ``filename_template``: validation at configuration time, rendering per trajectory.

A template names a path relative to the ATIF output directory (or a remote object key). It must
contain ``{session_id}`` (the root scope UUID) and may contain ``{metadata.<path>}`` or
``{metadata.<path>:-<fallback>}`` placeholders read from the root scope's start metadata. Rendered
metadata values are reduced to one safe path segment (runs of other characters become ``-``), so a
template can never escape its directory.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

__all__ = ["FilenameRenderError", "render_filename", "template_error"]

_OPEN = "{metadata."
_SELECTOR = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
# Characters a rendered metadata value keeps; everything else, and any run of two or more dots,
# collapses (together with neighbouring rejects) into a single "-".
_UNSAFE_RUN = re.compile(r"(?:[^A-Za-z0-9._~-]|\.{2,})+")


class FilenameRenderError(ValueError):
    """A template could not be rendered for one trajectory; ``str()`` is the diagnostic message.

    The ATIF dispatcher records it as runtime diagnostic ``atif.destination_render_failed`` (field
    ``filename_template``) and skips that trajectory.
    """


def _placeholders(template: str) -> Iterator[tuple[str, str, str | None]]:
    # Yields (placeholder text, selector, fallback or None); raises ValueError when unclosed.
    start = template.find(_OPEN)
    while start != -1:
        end = template.find("}", start)
        if end == -1:
            raise ValueError("ATIF filename_template contains an unclosed metadata placeholder")
        body = template[start + len(_OPEN) : end]
        selector, separator, fallback = body.partition(":-")
        yield template[start : end + 1], selector, fallback if separator else None
        start = template.find(_OPEN, end + 1)


def _is_safe_fragment(text: str) -> bool:
    return bool(text) and all(
        segment not in (".", "..") and _SAFE_SEGMENT.fullmatch(segment) for segment in text.split("/")
    )


def _is_safe_relative_path(path: str) -> bool:
    # Mirrors a component walk of a relative path: no root, no leading ".", no ".." anywhere
    # (an inner "." is ignored, as path normalisation drops it).
    if path.startswith("/"):
        return False
    for position, segment in enumerate(path.split("/")):
        if segment == ".." or (segment == "." and position == 0):
            return False
    return True


def template_error(template: str) -> str | None:
    """Why ``template`` is unusable (the reference's message), or None when it is valid."""
    if "{session_id}" not in template:
        return "ATIF filename_template must contain '{session_id}'"
    literal = template.replace("{session_id}", "session").replace(_OPEN, "metadata.")
    if not _is_safe_relative_path(literal):
        return "ATIF filename_template must be a path-safe relative path"
    try:
        for _text, selector, fallback in _placeholders(template):
            if not _SELECTOR.fullmatch(selector):
                return (
                    f"ATIF filename_template metadata placeholder '{_OPEN}{selector}}}' must contain a "
                    "dot-separated path of ASCII letters, digits, '-' or '_'"
                )
            if fallback is not None and not _is_safe_fragment(fallback):
                return f"ATIF filename_template fallback '{fallback}' must be a path-safe relative fragment"
    except ValueError as exc:
        return str(exc)
    return None


def _sanitize(value: str) -> str:
    cleaned = _UNSAFE_RUN.sub("-", value)
    return "-" if cleaned == "." else cleaned


def _resolve(metadata: Mapping[str, Any] | None, selector: str, fallback: str | None) -> str:
    placeholder = f"{_OPEN}{selector}}}"
    current: Any = metadata
    for segment in selector.split("."):
        if current is None:
            break
        if not isinstance(current, dict):
            raise FilenameRenderError(f"filename_template placeholder '{placeholder}' traversed a non-object value")
        current = current.get(segment)
    if current is None:
        if fallback is None:
            raise FilenameRenderError(f"filename_template placeholder '{placeholder}' must resolve to a string")
        return fallback
    if not isinstance(current, str):
        raise FilenameRenderError(f"filename_template placeholder '{placeholder}' resolved to a non-string value")
    if not current:
        raise FilenameRenderError(f"metadata path '{selector}' must be a path-safe relative fragment")
    return _sanitize(current)


def render_filename(template: str, session_id: str, metadata: Mapping[str, Any] | None) -> str:
    """The relative file name for one trajectory.

    ``session_id`` replaces every ``{session_id}``; each metadata placeholder is resolved by walking
    ``metadata`` (the root scope's start metadata) along its dotted path. A string is used after
    sanitising; a missing or null value uses the fallback. Raises ``FilenameRenderError`` when there
    is no fallback, the value is not a string, or the walk passes through a non-object.
    """
    pieces = []
    position = 0
    for text, selector, fallback in _placeholders(template):
        start = template.index(text, position)
        pieces.append(template[position:start].replace("{session_id}", session_id))
        pieces.append(_resolve(metadata, selector, fallback))
        position = start + len(text)
    pieces.append(template[position:].replace("{session_id}", session_id))
    return "".join(pieces)
