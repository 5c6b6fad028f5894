"""Process memory figures that work for any implementation (standard library only).

``tracemalloc`` sees only Python's allocator, so it misses the reference wheel's Rust heap; resident set
size (RSS) counts both, which is why every cross-implementation memory figure here is RSS.

``pymalloc_arenas`` explains RSS steps that are not live memory: CPython's small-object allocator takes
memory from the system in 1 MiB arenas (64-bit CPython 3.10+) and returns an arena only once every block
in it is free, so a burst of short-lived objects can leave arenas held by a few survivors (fragmentation).
RSS then moves in whole-arena steps while the live Python heap stays flat.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import tempfile

MIB = 1024 * 1024


def current_rss() -> int | None:
    """Resident set size of this process now, in bytes; ``None`` where ``/proc`` is missing (not Linux)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Highest resident set size this process has reached, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


_ARENAS = re.compile(rb"# arenas allocated current\s*=\s*([\d,]+)")


def pymalloc_arenas() -> int | None:
    """CPython's count of pymalloc arenas held now; ``None`` where it cannot be read.

    Parsed from ``sys._debugmallocstats()``, which writes to the C-level stderr, so file descriptor 2 is
    pointed at a temporary file for the call. It prints nothing (so ``None``) without pymalloc: not CPython,
    ``PYTHONMALLOC=malloc``, or while tracemalloc wraps the allocator. Takes a few milliseconds; call it
    between measured spans.
    """
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None
    try:
        with tempfile.TemporaryFile() as sink:
            sys.stderr.flush()
            saved = os.dup(2)
            try:
                os.dup2(sink.fileno(), 2)
                stats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            found = _ARENAS.search(sink.read())
    except OSError:
        return None
    return None if found is None else int(found.group(1).replace(b",", b""))
