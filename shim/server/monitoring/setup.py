"""Turning monitoring and tracing on for one served kernel, or explaining why they are off.

A profile that cannot be used (``shim serve`` refuses such a kernel up front; a worker process
or an embedding application may not have run the validator) turns monitoring off with one error
line naming the findings: serving itself is never affected by the profile.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from shim.contract.profile_check import ProfileError, load_profile
from shim.spec.kernel import Kernel
from shim.spec.monitoring import monitoring_of

log = logging.getLogger("shim.server")


def build_monitor(kernel: Kernel, registry: CollectorRegistry) -> tuple[Any, str | None]:
    """``(monitor, None)``, or ``(None, why monitoring is off)``."""
    if monitoring_of(kernel) is None:
        return None, "monitoring is off: the contract has no monitoring block (see README, Monitoring)"
    try:
        profile, spec = load_profile(kernel)
    except ProfileError as exc:
        first = exc.findings[0] if exc.findings else None
        reason = (
            f"monitoring is off: {first.code} {first.file} {first.path} {first.message}"
            if first
            else "monitoring is off: the profile cannot be used"
        )
        log.error(reason, extra={"findings": [f.code for f in exc.findings]})
        return None, reason
    try:
        from shim.server.monitoring.monitor import Monitor
    except ImportError as exc:  # an image without scipy still serves, and says why it does not monitor
        reason = f"monitoring is off: {exc.name} is not installed (pip install 'scipy>=1.11')"
        log.error(reason)
        return None, reason
    monitor = Monitor(kernel, profile, spec, registry)
    monitor.start()
    return monitor, None


def build_tracer(kernel: Kernel) -> Any:
    """The request tracer when OTEL_* configure an exporter (and the ``tracing`` extra is installed)."""
    from shim.server.monitoring.tracing import tracer_from_environment

    return tracer_from_environment(kernel)
