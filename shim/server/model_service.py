"""The served model's life cycle: load in the background, self-check, ready, drain.

The HTTP server is live before the model is loaded so that probes and operators can see why a
model is not ready; the reason (load error, failing golden sample) is on /v2/health/ready and in
the log, and the process stays up instead of crash-looping without an explanation.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shim.contract.model_run import ModelRunFailure, golden_sample_findings, load_as_served
from shim.runtimes.base import Runtime
from shim.server.batcher import Batcher, Observer
from shim.server.metrics import ServerMetrics
from shim.server.settings import ServerSettings
from shim.spec.kernel import Kernel

log = logging.getLogger("shim.server")

LOADING, READY, FAILED, DRAINING = "loading", "ready", "failed", "draining"


#: The young generation's threshold once the model serves (CPython's default is 700; 3.13 raised it
#: to 2,000). The drift monitor holds a few hundred requests for up to 50 ms; at 700 they set off a
#: young collection every ~60 ms, each walking all of them again (see docs/benchmarks.md).
YOUNG_THRESHOLD = 10_000


def _tune_collector() -> None:
    """Take everything loaded so far (the interpreter's modules, onnxruntime/torch/scipy objects,
    the model) out of the garbage collector's sight, as gc.freeze's documentation suggests for
    long-lived processes, and let more young objects accumulate before a collection. A full
    collection otherwise walks the whole loaded heap (64 ms on the benchmark MLP server, about
    every 20,000 requests with monitoring on); now it walks only what requests create."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


class ModelService:
    def __init__(self, kernel: Kernel, settings: ServerSettings, metrics: ServerMetrics,
                 in_flight: Callable[[], int]) -> None:
        self.kernel = kernel
        self.settings = settings
        self.metrics = metrics
        self.state = LOADING
        self.reason = "the model is loading"
        self.runtime: Runtime | None = None
        self.batcher: Batcher | None = None
        self._in_flight = in_flight
        self._loader: threading.Thread | None = None
        #: handed every execution (the drift monitor's ``observe_execution``); set before ``start``
        self.observer: Observer | None = None

    @property
    def ready(self) -> bool:
        return self.state == READY

    def start(self) -> None:
        self._loader = threading.Thread(target=self._load, name="shim-model-loader", daemon=True)
        self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> None:
        if self._loader is not None:
            self._loader.join(timeout)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            runtime = load_as_served(self.kernel, self.settings.device, self.settings.threads or None,
                                     options={"torch_compile": self.settings.torch_compile})
        except ModelRunFailure as exc:  # keeps the server up, not ready, with the reason
            what = "handler" if exc.findings[0].code == "KS008" else "model"
            self._fail(f"{what} failed to load: {exc}")
            return
        except Exception as exc:  # a runtime's own unexpected error: the same, never a crash loop
            self._fail(f"model failed to load: {exc}")
            return
        self.runtime = runtime
        log.info("runtime selected", extra={"runtime": runtime.describe()})
        if runtime.device.fallback_reason:
            log.warning("device fallback", extra={"reason": runtime.device.fallback_reason})
        findings, samples = golden_sample_findings(self.kernel, runtime)
        if findings:
            rendered = "; ".join(f.render().replace("\n", " ") for f in findings)
            self._fail("golden sample self-check failed: " + rendered)
            return
        self.batcher = Batcher(
            runtime, self.metrics,
            max_batch_size=self.kernel.batching.max_batch_size,
            max_queue_delay_us=self.kernel.batching.max_queue_delay_us,
            max_queue_size=self.settings.max_queue_size,
            in_flight=self._in_flight,
            short_switch_interval_s=self.settings.gil_switch_interval_us / 1_000_000,
            observer=self.observer,
        )
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.set(seconds)
        if self.settings.gc_tuning:
            _tune_collector()
        if self.state == LOADING:
            self.state, self.reason = READY, "ready"
            self.metrics.ready.set(1)
        log.info("model ready", extra={"model": self.kernel.name, "version": self.kernel.version,
                                       "load_seconds": round(seconds, 3), "golden_samples": samples})

    def _fail(self, reason: str) -> None:
        self.state, self.reason = FAILED, reason
        self.metrics.ready.set(0)
        log.error("model not ready", extra={"reason": reason})

    def drain(self) -> None:
        """Stop reporting ready (load balancers stop sending) while in-flight requests finish."""
        if self.state == READY:
            self.state, self.reason = DRAINING, "the server is shutting down"
            self.metrics.ready.set(0)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop(self.settings.graceful_timeout_s)
        if self.runtime is not None:
            self.runtime.close()

    def describe_runtime(self) -> dict[str, Any]:
        return self.runtime.describe() if self.runtime else {"state": self.state}
