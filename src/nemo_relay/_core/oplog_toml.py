"""Operational logging, TOML error text: the reference's "TOML parse error" snippets for ``oplog_config``.

tomllib reports no positions for values, so the reference's "TOML parse error at line L, column C"
snippets are rebuilt from a small scanner over the (already valid) text. Only reading a logging
configuration file loads this module.
"""

from __future__ import annotations

_Path = tuple[str | int, ...]
"""Where a key or value sits in a TOML document: table keys and array indexes, outermost first."""


def _shape_error_text(text: str, path: _Path, at_key: bool, message: str) -> str:
    spans = _TomlSpans(text)
    span = (spans.keys if at_key else spans.values).get(path)
    if span is None:
        where = ".".join(f"[{part}]" if isinstance(part, int) else part for part in path).replace(".[", "[")
        return f"TOML parse error at `{where}`\n{message}\n"
    return _snippet(text, span[0], span[1], message)


def _syntax_error_text(text: str, error: str) -> str:
    import re

    match = re.search(r" \(at line (\d+), column (\d+)\)$", error)
    if match is not None:
        line, column = int(match.group(1)), int(match.group(2))
        start = 0
        for _ in range(line - 1):
            start = text.index("\n", start) + 1
        return _snippet(text, start + column - 1, start + column, error[: match.start()])
    if error.endswith(" (at end of document)"):
        return _snippet(text, len(text), len(text), error[: -len(" (at end of document)")])
    return f"TOML parse error\n{error}\n"


def _snippet(text: str, start: int, end: int, message: str) -> str:
    line_no = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    content = text[line_start : len(text) if line_end < 0 else line_end].rstrip("\r")
    column = start - line_start
    carets = max(1, min(end, line_start + len(content)) - start)
    gutter = " " * (len(str(line_no)) + 1)
    return (
        f"TOML parse error at line {line_no}, column {column + 1}\n"
        f"{gutter}|\n"
        f"{line_no} | {content}\n"
        f"{gutter}|{' ' * (column + 1)}{'^' * carets}\n"
        f"{message}\n"
    )


class _TomlSpans:
    """Character spans of every key and value in a TOML text, by path (array items by index)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.keys: dict[_Path, tuple[int, int]] = {}
        self.values: dict[_Path, tuple[int, int]] = {}
        self._arrays: dict[_Path, int] = {}
        try:  # noqa: SIM105
            self._document()
        except (IndexError, ValueError):
            pass  # best effort: partial spans still help

    def _document(self) -> None:
        text = self.text
        prefix: _Path = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(text):
                return
            if text.startswith("[", self.pos):
                prefix = self._header()
            else:
                self._key_value(prefix)

    def _header(self) -> _Path:
        text = self.text
        start = self.pos
        array = text.startswith("[[", start)
        self.pos += 2 if array else 1
        segments = self._key()
        self._skip()
        self.pos += 2 if array else 1
        path: _Path = ()
        for index, (name, seg_start, seg_end) in enumerate(segments):
            path = (*path, name)
            self.keys.setdefault(path, (seg_start, seg_end))
            if index < len(segments) - 1:
                self.values.setdefault(path, (seg_start, seg_end))  # a table the header creates implicitly
                if path in self._arrays:
                    path = (*path, self._arrays[path])
        self.values.setdefault(path, (start, self.pos))
        if array:
            item = self._arrays.get(path, -1) + 1
            self._arrays[path] = item
            path = (*path, item)
            self.values.setdefault(path, (start, self.pos))
        return path

    def _key(self) -> list[tuple[str, int, int]]:
        import re

        text = self.text
        segments: list[tuple[str, int, int]] = []
        while True:
            self._skip()
            start = self.pos
            if text[start] in "\"'":
                quote = text[start]
                end = start + 1
                while text[end] != quote:
                    end += 2 if quote == '"' and text[end] == "\\" else 1
                self.pos = end + 1
                name = text[start + 1 : end]
            else:
                match = re.compile(r"[A-Za-z0-9_-]+").match(text, start)
                if match is None:
                    raise ValueError("not a key")
                self.pos = match.end()
                name = match.group()
            segments.append((name, start, self.pos))
            self._skip()
            if not text.startswith(".", self.pos):
                return segments
            self.pos += 1

    def _key_value(self, prefix: _Path) -> None:
        segments = self._key()
        path = prefix
        for index, (name, start, end) in enumerate(segments):
            path = (*path, name)
            self.keys.setdefault(path, (start, end))
            if index < len(segments) - 1:
                self.values.setdefault(path, (start, end))  # a dotted key's implicit table
        self._skip()
        self.pos += 1  # "="
        self._skip()
        self._value(path)

    def _value(self, path: _Path) -> None:
        import re

        text = self.text
        start = self.pos
        char = text[start]
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if text[self.pos] == "]":
                    self.pos += 1
                    break
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if text[self.pos] == ",":
                    self.pos += 1
        elif char == "{":
            self.pos += 1
            while True:
                self._skip()
                if text[self.pos] == "}":
                    self.pos += 1
                    break
                self._key_value(path)
                self._skip()
                if text[self.pos] == ",":
                    self.pos += 1
        elif text.startswith(('"""', "'''"), start):
            delimiter = text[start : start + 3]
            end = start + 3
            while not text.startswith(delimiter, end):
                end += 2 if delimiter == '"""' and text[end] == "\\" else 1
            end += 3
            for _ in range(2):  # up to two more quotes belong to the content
                if end < len(text) and text[end] == delimiter[0]:
                    end += 1
            self.pos = end
        elif char in "\"'":
            end = start + 1
            while text[end] != char:
                end += 2 if char == '"' and text[end] == "\\" else 1
            self.pos = end + 1
        else:
            match = re.compile(r"\d{4}-\d\d-\d\d[ Tt]\d\d:\d\d[^\s,\]}#]*|[^\s,\]}#]+").match(text, start)
            if match is None:
                raise ValueError("not a value")
            self.pos = match.end()
        self.values.setdefault(path, (start, self.pos))

    def _skip(self, newlines: bool = False) -> None:
        text = self.text
        blanks = " \t\r\n" if newlines else " \t"
        while self.pos < len(text):
            char = text[self.pos]
            if char in blanks:
                self.pos += 1
            elif char == "#" and newlines:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return
