"""Automatic ``skill.load`` marks: recognise tool calls that load an agent skill (a ``SKILL.md``).

Three shapes are recognised (tool and argument names compare lowercase without separators):
- ``skill_tool``: a tool named ``skill`` or ``skill_view``; skill names are the string values under
  ``skill``, ``skill_name`` or ``name`` anywhere in the arguments;
- ``structured_read``: a reader tool (``read``, ``read_file``, ``read_text_file`` ... as the last name
  segments) reading whole files (no ``offset`` other than 0, no ``limit``/``range``/``head``/``tail``/
  line bounds) named by ``path``, ``file_path``, ``paths``, ``uri`` ...;
- ``shell_read``: a shell tool whose ``command``/``cmd`` string is one complete read (``cat`` without
  display options, ``bat -p``, PowerShell ``Get-Content``), optionally wrapped once in ``sh -c`` and
  the like, with no pipes, redirections, command lists, substitutions or newlines.

The skill name is the directory holding a ``SKILL.md`` (any case). A caller that records skill loads
itself sets ``metadata["nemo_relay.skill_load_handled"] = True``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs milliseconds at import; annotations do not need it
if TYPE_CHECKING:
    from nemo_relay._core.types import JsonValue

HANDLED_KEY = "nemo_relay.skill_load_handled"

_SKILL_TOOLS = frozenset({"skill", "skillview"})
_SKILL_KEYS = frozenset({"skill", "skillname", "name"})
_READERS = frozenset(
    {"read", "readfile", "readtextfile", "readmultiplefiles", "fileread", "readresource", "getfilecontents",
     "readfilecontent"}
)  # fmt: skip
_PARTIAL_KEYS = frozenset({"limit", "range", "head", "tail", "startline", "endline", "linestart", "lineend"})
_PATH_KEYS = frozenset({"path", "filepath", "filename", "file", "paths", "uri", "absolutepath"})
_SHELLS = frozenset(
    {"sh", "bash", "zsh", "fish", "shell", "shellcommand", "exec", "execcommand", "execute", "terminal",
     "runcommand", "runshellcommand", "shellexec", "powershell", "pwsh"}
)  # fmt: skip
_FORBIDDEN = ("|", ">", "<", ";", "&", "$(", "`", "\n", "\r")

SHAPES: dict[str, str | None] = {}  # tool name -> "skill" | "read" | "shell" | None, bounded below


def _squash(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _segments(name: str) -> list[str]:
    # Split on separators and camelCase boundaries: "mcp__fs__readFile" -> ["mcp", "fs", "read", "file"].
    parts: list[str] = []
    current = ""
    for index, char in enumerate(name):
        if not char.isalnum():
            if current:
                parts.append(current)
            current = ""
            continue
        if current and char.isupper() and not name[index - 1].isupper():
            parts.append(current)
            current = ""
        current += char.lower()
    if current:
        parts.append(current)
    return parts


def _shape(tool_name: str) -> str | None:
    squashed = _squash(tool_name)
    if squashed in _SKILL_TOOLS:
        return "skill"
    if squashed in _SHELLS:
        return "shell"
    segments = _segments(tool_name)
    for start in range(len(segments)):
        if "".join(segments[start:]) in _READERS:
            return "read"
    return None


def detect(tool_name: str, args: JsonValue) -> list[tuple[str, str]]:
    """``(skill name, source)`` pairs for the skills this call loads (usually none)."""
    try:
        shape = SHAPES[tool_name]
    except KeyError:
        if len(SHAPES) >= 4096:  # tool names are few; a flood of unique names must not grow memory
            SHAPES.clear()
        shape = SHAPES[tool_name] = _shape(tool_name)
    if shape is None or type(args) is not dict:
        return []
    if shape == "skill":
        return [(name, "skill_tool") for name in _unique(_skill_names(args))]
    if shape == "read":
        return [(name, "structured_read") for name in _unique(_structured_reads(args))]
    for key, value in args.items():
        if _squash(key) in ("command", "cmd") and isinstance(value, str):
            return [(name, "shell_read") for name in _unique(_shell_reads(value))]
    return []


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _skill_names(value: JsonValue) -> list[str]:
    found: list[str] = []
    if type(value) is dict:
        for key, item in value.items():
            if _squash(key) in _SKILL_KEYS and isinstance(item, str) and item.strip():
                found.append(item.strip())
            elif type(item) in (dict, list):
                found.extend(_skill_names(item))
    elif type(value) is list:
        for item in value:
            found.extend(_skill_names(item))
    return found


def _structured_reads(args: dict[str, JsonValue]) -> list[str]:
    found: list[str] = []
    for key, value in args.items():
        squashed = _squash(key)
        if squashed == "offset" and value != 0:
            return []
        if squashed in _PARTIAL_KEYS and value is not None:
            return []
        if squashed in _PATH_KEYS:
            paths = value if type(value) is list else [value]
            found.extend(name for path in paths if isinstance(path, str) and (name := skill_of(path)) is not None)
    return found


def skill_of(path: str) -> str | None:
    """The skill directory of a path ending in ``SKILL.md`` (any case), else None."""
    if path.lower().startswith("file://"):
        path = path[7:]
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    if len(parts) < 2 or parts[-1].lower() != "skill.md":
        return None
    parent = parts[-2]
    if parent in (".", "..") or (len(parent) == 2 and parent[1] == ":"):  # relative markers, drive roots
        return None
    return parent


def _shell_reads(command: str) -> list[str]:
    if "skill.md" not in command.lower() or any(token in command for token in _FORBIDDEN):
        return []
    import shlex  # deferred: only shell commands that mention a SKILL.md get here

    try:
        argv = _unwrap(shlex.split(command))
    except ValueError:  # unbalanced quotes: not a plain read
        return []
    if not argv:
        return []
    program = argv[0].rsplit("/", 1)[-1].lower()
    operands: list[str] | None = None
    if program == "cat":
        operands = [word for word in argv[1:] if word != "--"]
        if any(word.startswith("-") for word in operands):
            return []  # display options (-n, -A ...) make it something other than a plain read
    elif program in ("bat", "batcat"):
        options = [word for word in argv[1:] if word.startswith("-")]
        if options not in (["-p"], ["--plain"]):
            return []
        operands = [word for word in argv[1:] if not word.startswith("-")]
    elif program in ("get-content", "gc"):
        operands = _get_content_paths(argv[1:])
    if operands is None:
        return []
    return [name for word in operands if (name := skill_of(word)) is not None]


def _unwrap(argv: list[str]) -> list[str]:
    """Remove one shell wrapper (``bash -c '...'`` and friends); the wrapped text must itself be clean."""
    import shlex

    if not argv:
        return argv
    program = argv[0].rsplit("/", 1)[-1].lower()
    inner: str | None = None
    posix_shell = program in ("sh", "bash", "zsh") and argv[1:2] in (["-c"], ["-lc"])
    if (posix_shell or (program == "fish" and argv[1:2] == ["-c"])) and len(argv) == 3:
        inner = argv[2]
    elif program == "fish" and len(argv) == 2 and argv[1].startswith("--command="):
        inner = argv[1][len("--command=") :]
    elif program in ("powershell", "pwsh", "powershell.exe", "pwsh.exe") and [a.lower() for a in argv[1:2]] == [
        "-command"
    ]:
        inner = " ".join(argv[2:])
    if inner is None:
        return argv
    if any(token in inner for token in _FORBIDDEN):
        return []
    return shlex.split(inner)


def _get_content_paths(words: list[str]) -> list[str] | None:
    paths: list[str] = []
    skip = False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        lowered = word.lower()
        if lowered in ("-path", "-literalpath", "-encoding"):
            if index + 1 >= len(words):
                return None
            if lowered != "-encoding":
                paths.append(words[index + 1])
            skip = True
        elif lowered == "-raw":
            continue
        elif word.startswith("-"):
            return None
        else:
            paths.append(word)
    return paths
