"""Dynamic batching: merge concurrent requests into one model execution.

One worker thread per model runs the model (onnxruntime and torch release the GIL, so the event
loop keeps parsing requests meanwhile). Requests that arrive while it is busy queue up; the
next execution takes as many as fit in ``max_batch_size``. When ``max_queue_delay_us`` is set the
worker waits for more rows until the oldest request has waited that long, but only while other
requests are already in flight: a lone request is never delayed. The queue is bounded; a full
queue is answered with 503.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from shim.runtimes.base import OutOfMemory, Runtime
from shim.server.metrics import ServerMetrics

log = logging.getLogger("shim.server")

#: Called with every successful execution, on the thread that ran it: the requests' tags (request
#: ids) in order, the inputs the model ran on (the batch's merged arrays), its outputs, and each
#: request's rows. It must be O(1) (the drift monitor appends references to a deque): it runs
#: before the requests are answered.
Observer = Callable[[list[Any], dict[str, np.ndarray], dict[str, np.ndarray], list[int]], None]


class QueueFull(Exception):
    """The bounded request queue is full."""


class ModelFailure(Exception):
    """The model raised while running a batch that contained this request."""


@dataclass(eq=False)
class Job:
    inputs: dict[str, np.ndarray]
    rows: int
    signature: tuple[Any, ...]
    future: asyncio.Future[dict[str, np.ndarray]]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    abandoned: bool = False
    #: tracing only: [enqueued, started, finished, batch size, rows] is appended when it ran
    trace: list[float] | None = None
    #: what the observer is given for this request (its request id)
    tag: Any = None


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # the client went away and the request was cancelled
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Execution(NamedTuple):
    """A typical execution: the medians of recent executions' wall time and CPU time."""

    wall: float
    cpu: float


class Batcher:
    #: A model whose recent executions took less than this of their thread's CPU runs on the
    #: event loop's thread when it is the only request in flight: for a microsecond-scale model
    #: the two thread hand-offs (wake the worker, wake the loop) cost more than the model itself.
    #: Slower models, and any request that has company (so could share a batch), go through the
    #: worker. CPU time, because wall time also counts the OS preempting the thread and waits for
    #: the GIL: on a loaded machine (CI) most executions of a 30 us model measured over 200 us of
    #: wall time, and every lone request then paid the hand-offs.
    INLINE_BELOW_S = 0.0002
    #: ... unless their wall time is this long: a model that waits (I/O, a lock, a device) costs
    #: little CPU but would stall every other request on the event loop.
    BLOCKING_FROM_S = 0.001
    #: How many recent executions the typical execution time is the median of.
    RECENT_EXECUTIONS = 9
    #: The short GIL switch interval (``gil_switch_interval_us``) is kept only while the worker's
    #: executions take at least this much of its thread's CPU (the median of recent ones); for a
    #: faster CPU model CPython's default interval comes back. The short interval lets the worker
    #: take the GIL back soon after a long native execution, so a compute-bound model is not left
    #: idle behind the event loop (CNN at c=32: 1,338 req/s at 200 us, 1,161 at 5 ms). For a model
    #: of microseconds the event loop is the bottleneck and every forced switch interrupts it; the
    #: worker waiting longer also gathers bigger batches (MLP at c=32: 6,601 req/s at 200 us, 8,385
    #: at 5 ms; loop CPU 130 -> 110 and worker 36 -> 10 us per request). CPU time, not wall time:
    #: an execution's wall time includes waiting for the GIL, which the interval itself changes.
    SHORT_SWITCH_FROM_S = 0.001
    DEFAULT_SWITCH_S = 0.005  # CPython's

    def __init__(
        self,
        runtime: Runtime,
        metrics: ServerMetrics,
        max_batch_size: int,
        max_queue_delay_us: int,
        max_queue_size: int,
        in_flight: Callable[[], int],
        short_switch_interval_s: float = 0.0,
        observer: Observer | None = None,
    ) -> None:
        self.runtime = runtime
        #: the drift monitor, handed each execution whole: per execution, not per request, so its
        #: thread merges a few arrays per batch instead of one per request (MLP at c=32: ~30
        #: requests an execution)
        self.observer = observer
        self.metrics = metrics
        self.max_batch_size = max(1, max_batch_size)
        self.batching = max_batch_size > 0
        self.delay_s = max_queue_delay_us / 1_000_000
        self.max_queue_size = max_queue_size
        self._in_flight = in_flight
        self._queue: deque[Job] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._busy = False  # the worker is running a batch
        #: (wall seconds, CPU seconds on the executing thread) of the last few executions, and
        #: the median of each; None until measured
        self._recent: deque[tuple[float, float]] = deque(maxlen=self.RECENT_EXECUTIONS)
        self._typical: Execution | None = None
        self._batch_started = 0.0
        #: 0: the interpreter's switch interval is left as it is (GPU models, or the setting is 0)
        self._short_switch_s = short_switch_interval_s if runtime.device.kind == "cpu" else 0.0
        self._short_switch = True  # as tune_interpreter set it
        self._thread = threading.Thread(target=self._work, name="shim-model-worker", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, inputs: dict[str, np.ndarray], trace: list[float] | None = None,
                     tag: Any = None) -> dict[str, np.ndarray]:
        if len(self._queue) >= self.max_queue_size:
            raise QueueFull(f"the request queue is full ({self.max_queue_size} waiting)")
        loop = asyncio.get_running_loop()
        first = next(iter(inputs.values()))
        rows = int(first.shape[0]) if self.batching and first.ndim else 1
        if self._inline_ok():
            if trace is None:
                return self._run_inline(inputs, rows, tag)
            began = time.perf_counter()
            try:
                return self._run_inline(inputs, rows, tag)
            finally:
                trace.extend((began, began, time.perf_counter(), 1, rows))
        signature = tuple((name, a.shape[1:]) for name, a in inputs.items()) if self.batching else ()
        job = Job(inputs, rows, signature, loop.create_future(), loop, trace=trace, tag=tag)
        with self._cv:
            self._queue.append(job)
            self._cv.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.abandoned = True  # the worker skips it if it has not started yet
            raise

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join(timeout)

    # -- worker thread -------------------------------------------------------------------------

    def _take_batch(self) -> list[Job] | None:
        with self._cv:
            while not self._queue:
                if self._stopping:
                    return None
                self._cv.wait()
            batch = [self._queue.popleft()]
            self._busy = True
            rows = batch[0].rows
            # Triton's rule: the delay counts from the oldest request's arrival, not from when the
            # worker got free. Under load the head of the queue has already waited a whole
            # execution, so the next batch starts at once instead of idling the model.
            deadline = batch[0].enqueued + self.delay_s
            while self.batching and rows < self.max_batch_size:
                if self._queue:
                    nxt = self._queue[0]
                    if nxt.signature != batch[0].signature or rows + nxt.rows > self.max_batch_size:
                        break
                    batch.append(self._queue.popleft())
                    rows += nxt.rows
                    continue
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._in_flight() <= len(batch):
                    break
                self._cv.wait(remaining)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            batch = [job for job in batch if not job.abandoned]
            if not batch:
                self._busy = False
                continue
            started = time.perf_counter()
            for job in batch:
                self.metrics.queue_seconds.observe(started - job.enqueued)
            self.metrics.batch_size.observe(len(batch))
            self._batch_started = started
            cpu = time.thread_time()
            answers = self._run(batch)
            self._note_compute(time.perf_counter() - started, time.thread_time() - cpu)
            if self._short_switch_s:
                self._tune_switch_interval()
            # Free before the answers go out: the event loop, woken by the first one, may submit
            # the next request at once and must see an idle worker and the new execution time.
            self._busy = False
            for job, result, error in answers:
                job.loop.call_soon_threadsafe(_resolve, job.future, result, error)
            if self.runtime.device.kind == "cuda":
                self._note_device_memory()

    def _tune_switch_interval(self) -> None:
        typical = self._typical
        short = typical is not None and typical.cpu >= self.SHORT_SWITCH_FROM_S
        if short != self._short_switch:
            self._short_switch = short
            interval = self._short_switch_s if short else self.DEFAULT_SWITCH_S
            sys.setswitchinterval(interval)
            log.info("GIL switch interval set", extra={"interval_us": round(interval * 1e6),
                                                       "execution_cpu_us": round(typical.cpu * 1e6, 1)
                                                       if typical else None})

    # -- inline fast path (event-loop thread) ---------------------------------------------------

    def _inline_ok(self) -> bool:
        typical = self._typical
        return (typical is not None and typical.cpu < self.INLINE_BELOW_S
                and typical.wall < self.BLOCKING_FROM_S and self._in_flight() <= 1
                and not self._busy and not self._queue and self.runtime.device.kind == "cpu")

    def _note_compute(self, seconds: float, cpu_s: float) -> None:
        self.metrics.compute_seconds.observe(seconds)
        # The median of the last few executions, not an average: on a busy machine the OS preempts
        # an execution now and then for milliseconds, which says nothing about the model. An
        # average (even of clipped samples) let one or two such stalls lift a 50 us model over the
        # threshold, and every following request then paid two thread hand-offs (seen under
        # py-spy/cProfile on a loaded 2-core machine). A model that is really slower than the
        # threshold moves the median within a few executions.
        recent = self._recent
        recent.append((seconds, cpu_s))
        middle = len(recent) // 2
        self._typical = Execution(sorted(w for w, _ in recent)[middle], sorted(c for _, c in recent)[middle])

    def _run_inline(self, inputs: dict[str, np.ndarray], rows: int, tag: Any) -> dict[str, np.ndarray]:
        """Run one request right here; same metrics and the same errors as the worker's path."""
        self.metrics.queue_seconds.observe(0.0)
        self.metrics.batch_size.observe(1)
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            outputs = self.runtime.predict(inputs)
        except OutOfMemory as exc:
            raise self._out_of_memory(exc, 1, rows) from None
        except Exception as exc:
            raise self._model_failure(exc) from None
        finally:
            self._note_compute(time.perf_counter() - started, time.thread_time() - cpu)
        if self.observer is not None:
            self.observer([tag], inputs, outputs, [rows])
        return outputs

    def _out_of_memory(self, exc: OutOfMemory, requests: int, rows: int) -> OutOfMemory:
        self.metrics.oom.inc()
        memory = self.runtime.memory_stats()
        log.error("out of device memory", extra={"batch_size": requests, "rows": rows, "memory": memory,
                                                 "error": str(exc)[:500]})
        return OutOfMemory(
            f"the model ran out of device memory on a batch of {rows} rows; retry later"
            " or send smaller requests"
        )

    def _note_device_memory(self) -> None:
        stats = self.runtime.memory_stats()
        self.metrics.gpu_memory_used.set(stats.get("allocated", 0.0))
        self.metrics.gpu_memory_reserved.set(stats.get("reserved", 0.0))

    @staticmethod
    def _model_failure(exc: Exception) -> ModelFailure:
        log.warning("model raised", extra={"error": f"{type(exc).__name__}: {str(exc)[:500]}"})
        return ModelFailure(f"the model failed: {type(exc).__name__}: {str(exc)[:1000]}")

    def _run(self, batch: list[Job]) -> list[tuple[Job, Any, BaseException | None]]:
        """Execute ``batch``; each job's result or error, for the caller to deliver."""
        try:
            if len(batch) == 1:
                merged = batch[0].inputs
                outputs = self.runtime.predict(merged)
                results = [outputs]
            else:
                merged = {name: np.concatenate([job.inputs[name] for job in batch])
                          for name in batch[0].inputs}
                outputs = self.runtime.predict(merged)
                offsets = np.cumsum([job.rows for job in batch])[:-1]
                split = {name: np.split(value, offsets) for name, value in outputs.items()}
                results = [{name: parts[i] for name, parts in split.items()} for i in range(len(batch))]
        except OutOfMemory as exc:
            error = self._out_of_memory(exc, len(batch), sum(j.rows for j in batch))
            return [(job, None, error) for job in batch]
        except Exception as exc:
            if len(batch) > 1:  # isolate the request that made the model fail
                return [answer for job in batch for answer in self._run([job])]
            return [(batch[0], None, self._model_failure(exc))]
        finished = time.perf_counter()
        if self.observer is not None:
            self.observer([job.tag for job in batch], merged, outputs, [job.rows for job in batch])
        for job in batch:
            if job.trace is not None:  # tracing: recorded before the request can see its result
                job.trace.extend((job.enqueued, self._batch_started, finished, len(batch),
                                  sum(j.rows for j in batch)))
        return [(job, result, None) for job, result in zip(batch, results, strict=True)]
