"""What this machine can give a build.

`usable_cpus()` counts the CPUs this process may really use: os.cpu_count() reports the
host's CPUs even where CPU affinity or a container's cgroup quota allows fewer.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def usable_cpus() -> tuple[int, str]:
    """The number of CPUs, and why."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None and quota < affinity:
        count = max(1, math.ceil(quota))
        return count, f"auto: cgroup CPU quota {quota:g} of {affinity} CPUs"
    return affinity, f"auto: {affinity} usable CPUs"


def cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup's CFS quota, or None where there is no limit."""
    try:
        quota, period = CGROUP_V2_MAX.read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(CGROUP_V1_QUOTA.read_text())
        period_us = int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None
