"""Automatic ``skill.load`` marks: recognise tool calls that load an agent skill (a ``SKILL.md``).

Three shapes are recognised, cheapest test first:
- ``skill_tool``: a tool named ``Skill`` whose arguments name the skill;
- ``structured_read``: a file-read tool (``read``, ``read_file`` ...) whose path argument ends in
  ``<skill>/SKILL.md`` and that reads the whole file (no ``limit``, ``offset`` 0 or absent);
- ``shell_read``: a shell tool whose command reads ``<skill>/SKILL.md`` with cat/head/tail/less/more/bat/sed.

A caller that records skill loads itself sets ``metadata["nemo_relay.skill_load.handled"] = true``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonValue

HANDLED_KEY = "nemo_relay.skill_load.handled"

_READ_SUFFIXES = ("read", "read_file", "read_text_file", "readfile", "file_read", "view_file")
_PATH_KEYS = ("path", "file_path", "filepath", "absolute_path", "target_file", "filename", "file")
_SHELL_TOOLS = frozenset(
    {"bash", "shell", "sh", "run_shell_command", "exec_command", "run_terminal_cmd", "terminal", "local_shell"}
)
_COMMAND_KEYS = ("command", "cmd", "script")
_READERS = frozenset({"cat", "head", "tail", "less", "more", "bat", "sed", "nl"})
_SKILL_NAME_KEYS = ("skill", "skill_name", "name", "command")


_SHAPES: dict[str, str | None] = {}  # tool name -> "skill" | "read" | "shell" | None, bounded below


def _shape(tool_name: str) -> str | None:
    lowered = tool_name.lower()
    if lowered == "skill":
        return "skill"
    if lowered.endswith(_READ_SUFFIXES):
        return "read"
    return "shell" if lowered in _SHELL_TOOLS else None


def detect(tool_name: str, args: JsonValue) -> list[tuple[str, str]]:
    """``(skill name, source)`` pairs for the skills this call loads (usually none)."""
    try:
        shape = _SHAPES[tool_name]
    except KeyError:
        if len(_SHAPES) >= 4096:  # tool names are few; a flood of unique names must not grow memory
            _SHAPES.clear()
        shape = _SHAPES[tool_name] = _shape(tool_name)
    if shape is None or type(args) is not dict:
        return []
    if shape == "skill":
        for key in _SKILL_NAME_KEYS:
            value = args.get(key)
            if isinstance(value, str) and value.strip():
                return [(value.strip(), "skill_tool")]
        return []
    if shape == "read":
        if "limit" in args or args.get("offset", 0) not in (0, None):
            return []
        for key in _PATH_KEYS:
            path = args.get(key)
            if isinstance(path, str):
                name = _skill_of(path)
                return [] if name is None else [(name, "structured_read")]
        return []
    for key in _COMMAND_KEYS:
        command = args.get(key)
        if isinstance(command, list):
            command = " ".join(str(part) for part in command)
        if isinstance(command, str) and "skill.md" in command.lower():
            return [(name, "shell_read") for name in _shell_reads(command)]
    return []


def _skill_of(path: str) -> str | None:
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if len(parts) >= 2 and parts[-1].lower() == "skill.md":
        return parts[-2]
    return None


def _shell_reads(command: str) -> list[str]:
    found: list[str] = []
    for segment in command.replace("&&", ";").replace("||", ";").replace("|", ";").split(";"):
        words = [word.strip("'\"") for word in segment.split()]
        if not words or words[0].rsplit("/", 1)[-1] not in _READERS:
            continue
        for word in words[1:]:
            name = _skill_of(word)
            if name is not None and name not in found:
                found.append(name)
    return found
