"""How many CPUs this process may really use: affinity and the container's cgroup CPU quota.

``os.cpu_count()`` reports the host's cores; in a container limited to 2 CPUs on a 64-core node,
sizing thread pools from it makes every runtime thrash. Like the JVM and Go runtimes, read the
cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup quota, or None when unlimited or unknown."""
    cpu_max = _read(cgroup_root / "cpu.max")
    if cpu_max:
        quota, _, period = cpu_max.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    quota_text = _read(cgroup_root / "cpu" / "cpu.cfs_quota_us") or _read(cgroup_root / "cpu.cfs_quota_us")
    period_text = _read(cgroup_root / "cpu" / "cpu.cfs_period_us") or _read(cgroup_root / "cpu.cfs_period_us")
    if quota_text and period_text and int(quota_text) > 0:
        return int(quota_text) / int(period_text)
    return None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Whole CPUs this process can use (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)
