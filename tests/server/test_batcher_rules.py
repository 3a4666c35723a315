"""The dynamic batcher's scheduling rules, driven directly (real onnxruntime model underneath).

Timing here is coarse on purpose (seconds, not microseconds): each rule is shown by a difference
of about two seconds between the right and the wrong behaviour.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Mapping

import numpy as np
import pytest

from shim.contract.kernel import read_kernel
from shim.runtimes.base import Runtime, load_runtime
from shim.server.batcher import Batcher
from shim.server.metrics import ServerMetrics
from tests.server.conftest import KERNELS

DELAY_US = 2_000_000  # the kernel's max_queue_delay_us for these tests: 2 s


class GatedRuntime(Runtime):
    """The iris model, whose first execution blocks until the test opens the gate."""

    def __init__(self) -> None:
        kernel = read_kernel(KERNELS / "iris-classifier")
        super().__init__(kernel)
        self.inner = load_runtime(kernel, device="cpu", threads=1)
        self.framework, self.device, self.threads = self.inner.framework, self.inner.device, 1
        self.gate = threading.Event()
        self.calls: list[int] = []

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.calls:
            self.gate.wait(30)
        self.calls.append(next(iter(inputs.values())).shape[0])
        return self.inner.predict(inputs)


def row(value: float) -> dict[str, np.ndarray]:
    return {"X": np.full((1, 4), value, dtype=np.float32)}


def test_queued_requests_do_not_wait_again_once_their_delay_has_passed():
    runtime = GatedRuntime()
    in_flight = [1]
    batcher = Batcher(runtime, ServerMetrics("iris", "1"), max_batch_size=8, max_queue_delay_us=DELAY_US,
                      max_queue_size=16, in_flight=lambda: in_flight[0])

    async def scenario() -> float:
        first = asyncio.ensure_future(batcher.submit(row(1.0)))  # alone: runs at once, blocks on the gate
        while not batcher._busy:
            await asyncio.sleep(0.01)
        in_flight[0] = 100  # from now on the worker believes more requests are coming
        later = [asyncio.ensure_future(batcher.submit(row(v))) for v in (2.0, 3.0)]
        await asyncio.sleep(DELAY_US / 1e6 + 0.5)  # the queued two have waited longer than the delay
        runtime.gate.set()
        opened = time.perf_counter()
        await first
        await asyncio.gather(*later)
        return time.perf_counter() - opened

    try:
        after_gate = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert runtime.calls == [1, 2], runtime.calls  # the two queued requests ran as one batch
    # the delay counts from their arrival, which was over 2 s ago: no second wait of up to 2 s
    assert after_gate < 1.0, f"queued requests waited {after_gate:.2f}s more after the model got free"


def test_a_lone_request_is_never_delayed():
    runtime = GatedRuntime()
    runtime.gate.set()
    batcher = Batcher(runtime, ServerMetrics("iris", "1"), max_batch_size=8, max_queue_delay_us=DELAY_US,
                      max_queue_size=16, in_flight=lambda: 1)

    async def scenario() -> float:
        started = time.perf_counter()
        await batcher.submit(row(1.0))
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert elapsed < 1.0, f"a lone request waited {elapsed:.2f}s for company"


class HiccupRuntime(Runtime):
    """The iris model; one execution is stalled (as when the OS preempts the process) and every
    execution records the thread it ran on."""

    def __init__(self, stall_s: float) -> None:
        kernel = read_kernel(KERNELS / "iris-classifier")
        super().__init__(kernel)
        self.inner = load_runtime(kernel, device="cpu", threads=1)
        self.framework, self.device, self.threads = self.inner.framework, self.inner.device, 1
        self.stall_s = stall_s
        self.inner.predict(row(0.0))  # onnxruntime's first run is slow; that is not the point here
        self.threads_seen: list[str] = []

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads_seen.append(threading.current_thread().name)
        if len(self.threads_seen) == 7:
            time.sleep(self.stall_s)
        return self.inner.predict(inputs)


def _submit_one_by_one(runtime: Runtime, requests: int, in_flight: int = 1,
                       short_switch_interval_s: float = 0.0) -> None:
    """``requests`` requests through a batcher, each after the previous one's answer."""
    batcher = Batcher(runtime, ServerMetrics("iris", "1"), max_batch_size=8, max_queue_delay_us=0,
                      max_queue_size=16, in_flight=lambda: in_flight,
                      short_switch_interval_s=short_switch_interval_s)

    async def sequential() -> None:
        for value in range(requests):
            await batcher.submit(row(float(value)))

    try:
        asyncio.run(sequential())
    finally:
        batcher.stop()


def test_one_stalled_execution_does_not_send_a_fast_model_to_the_worker():
    """A microsecond model runs inline when alone; a single 50 ms stall must not move the next
    requests onto the worker thread (each would pay two thread hand-offs)."""
    runtime = HiccupRuntime(stall_s=0.05)
    _submit_one_by_one(runtime, 15)
    main = threading.main_thread().name
    assert runtime.threads_seen[0] == "shim-model-worker"  # unmeasured at first: the worker measures it
    assert runtime.threads_seen[5] == main, runtime.threads_seen  # measured fast: inline when alone
    assert runtime.threads_seen[7:] == [main] * 8, runtime.threads_seen  # the stall (7th) changed nothing


def test_a_fast_model_on_a_loaded_machine_still_runs_inline_when_alone():
    """On a loaded machine (CI) the OS preempts executions: here every one takes 0.4 ms of wall
    time but microseconds of CPU. The decision counts the model's CPU time, so lone requests still
    skip the thread hand-offs (by wall time every one of them went to the worker)."""
    runtime = HiccupRuntime(stall_s=0.0)
    runtime.predict = lambda inputs, inner=runtime.predict: (time.sleep(0.0004), inner(inputs))[1]
    _submit_one_by_one(runtime, 10)
    main = threading.main_thread().name
    assert runtime.threads_seen[0] == "shim-model-worker"  # unmeasured at first: the worker measures it
    assert runtime.threads_seen[5:] == [main] * 5, runtime.threads_seen  # measured: inline when alone


def test_a_slow_model_runs_on_the_worker_even_when_alone():
    runtime = HiccupRuntime(stall_s=0.0)
    runtime.predict = lambda inputs, inner=runtime.predict: (time.sleep(0.002), inner(inputs))[1]
    _submit_one_by_one(runtime, 6)
    assert runtime.threads_seen == ["shim-model-worker"] * 6


class BusyRuntime(HiccupRuntime):
    """The iris model, each execution also burning ``cpu_s`` of its thread's CPU."""

    def __init__(self, cpu_s: float) -> None:
        super().__init__(stall_s=0.0)
        self.cpu_s = cpu_s

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        began = time.thread_time()
        while time.thread_time() - began < self.cpu_s:
            pass
        return super().predict(inputs)


def _switch_interval_after(runtime: Runtime, executions: int) -> float:
    """The interpreter's switch interval after ``executions`` worker executions, starting short."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # what tune_interpreter sets from gil_switch_interval_us
    try:
        _submit_one_by_one(runtime, executions, in_flight=2, short_switch_interval_s=0.0002)
        return sys.getswitchinterval()
    finally:
        sys.setswitchinterval(previous)


def test_a_fast_model_gets_cpythons_switch_interval_back_and_a_compute_bound_one_keeps_the_short_one():
    """The short GIL switch interval helps a compute-bound model take the GIL back after each long
    native execution; for a microsecond model it only interrupts the event loop."""
    assert _switch_interval_after(HiccupRuntime(stall_s=0.0), 12) == pytest.approx(0.005)
    assert _switch_interval_after(BusyRuntime(cpu_s=0.003), 12) == pytest.approx(0.0002)
    # wall time spent off the CPU (waiting for the GIL, sleeping) is not the model's work
    sleepy = HiccupRuntime(stall_s=0.0)
    sleepy.predict = lambda inputs, inner=sleepy.predict: (time.sleep(0.003), inner(inputs))[1]
    assert _switch_interval_after(sleepy, 12) == pytest.approx(0.005)
