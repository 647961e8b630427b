"""How many cores this process may use: LightGBM's threads, parallel hashing."""

from __future__ import annotations

import os


def available_threads() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset``
    restrict), else the machine's count.

    LightGBM is deterministic for a fixed thread count, so models record the count they used
    (the ``num_threads`` parameter); a spec may pin it in ``params``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
