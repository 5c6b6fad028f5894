"""Process memory figures that work for any implementation (standard library only).

``tracemalloc`` sees only Python's allocator, so it misses the reference wheel's Rust heap; resident set
size (RSS) counts both, which is why every cross-implementation memory figure here is RSS.
"""

from __future__ import annotations

import os
import resource
import sys

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
