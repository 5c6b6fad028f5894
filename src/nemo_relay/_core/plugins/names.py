"""Effective names of plugin registrations: ``nemo-relay-plugin.v1.<kind>:<ordinal>:<local name>``.

Every registration a plugin component makes is published under its component's namespace, so two
components (or a component and the global API) can use the same local name. The kind is
percent-encoded (RFC 3986 unreserved characters stay literal, every other UTF-8 byte becomes
``%XX``) and the ordinal counts the enabled components of that kind, from 1, in activation order.
``parse`` is the inverse, used to report owners; it accepts only names ``namespace`` could produce.
"""

from __future__ import annotations

PREFIX = "nemo-relay-plugin.v1."
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789ABCDEF")
_MAX_ORDINAL = 2**32 - 1


def encode_kind(kind: str) -> str:
    """The percent-encoded form of a plugin kind."""
    if all(char in _UNRESERVED for char in kind):
        return kind
    return "".join(char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode()) for char in kind)


def namespace(kind: str, ordinal: int) -> str:
    """The prefix of every effective name registered by component ``ordinal`` of ``kind``."""
    return f"{PREFIX}{encode_kind(kind)}:{ordinal}:"


def parse(effective_name: str) -> tuple[str, int, str] | None:
    """``(plugin kind, component ordinal, local name)`` of a plugin registration, else None."""
    if not effective_name.startswith(PREFIX):
        return None
    parts = effective_name[len(PREFIX) :].split(":")
    if len(parts) != 3:
        return None
    encoded, ordinal_text, local = parts
    if not local or not all(char in _UNRESERVED for char in local):
        return None
    if not (ordinal_text.isascii() and ordinal_text.isdigit()) or ordinal_text[0] == "0":
        return None
    ordinal = int(ordinal_text)
    if ordinal > _MAX_ORDINAL:
        return None
    kind = _decode_kind(encoded)
    return None if kind is None else (kind, ordinal, local)


def _decode_kind(encoded: str) -> str | None:
    # Only the canonical encoding is accepted, so every kind has exactly one effective name.
    if not encoded:
        return None
    raw = bytearray()
    index = 0
    while index < len(encoded):
        char = encoded[index]
        if char == "%":
            digits = encoded[index + 1 : index + 3]
            if len(digits) != 2 or not all(d in _HEX for d in digits):
                return None
            raw.append(int(digits, 16))
            index += 3
        elif char in _UNRESERVED:
            raw.append(ord(char))
            index += 1
        else:
            return None
    try:
        kind = raw.decode()
    except UnicodeDecodeError:
        return None
    return kind if encode_kind(kind) == encoded else None
