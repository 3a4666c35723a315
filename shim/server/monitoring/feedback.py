"""Live accuracy: feedback joined with the prediction the server made for the same request id.

The store is bounded twice: at most ``max_entries`` predictions (the oldest go first) and each for
``ttl_seconds`` (feedback for an older request is answered 404, as for an id never seen). Only the
monitored value of the request (its label, or its regression value) is kept, never the inputs.
Accuracy (or mean absolute error) is over the last ``window`` feedbacks.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shim.spec.monitoring import category_key


class FeedbackError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # a dataplane error kind: "invalid" or "not_found"


@dataclass(frozen=True)
class Joined:
    correct: int
    rows: int
    error: float


class FeedbackStore:
    def __init__(self, metric: str, max_entries: int, ttl_s: float, window: int) -> None:
        self.metric = metric  # "accuracy" or "mae"
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        #: request id -> (expires, (predictions, first row, end row))
        self._entries: OrderedDict[str, tuple[float, tuple[np.ndarray, int, int]]] = OrderedDict()
        self._lock = threading.Lock()
        self._outcomes: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self.joined = 0

    def remember(self, request_id: str, predicted: np.ndarray, now: float | None = None) -> None:
        self.remember_many([(request_id, predicted)], now)

    def remember_many(self, served: list[tuple[str, np.ndarray]], now: float | None = None) -> None:
        """Keep the predictions of many requests, each its own array (one lock, one trim). A
        repeated id replaces its prediction and becomes the newest."""
        self._keep([request_id for request_id, _ in served],
                   [(predicted, 0, predicted.shape[0]) for _, predicted in served], now)

    def remember_rows(self, request_ids: list[str], predicted: np.ndarray, ends: list[int] | range,
                      now: float | None = None) -> None:
        """Keep the predictions of many requests given as one array and where each request's rows
        end in it (the monitor thread, once per drain): the entries share that array and their
        tuples are made by ``zip``, so a drain costs no Python-level work per request."""
        starts = range(len(ends)) if isinstance(ends, range) else [0, *ends[:-1]]
        self._keep(request_ids, zip(itertools.repeat(predicted), starts, ends), now)

    def _keep(self, request_ids: list[str], where: Iterable[tuple[np.ndarray, int, int]],
              now: float | None) -> None:
        expires = (now if now is not None else time.monotonic()) + self.ttl_s
        with self._lock:
            entries = self._entries
            if not entries.keys().isdisjoint(request_ids):  # a repeated id becomes the newest
                for request_id in request_ids:
                    if request_id in entries:
                        entries.move_to_end(request_id)
            entries.update(zip(request_ids, zip(itertools.repeat(expires), where), strict=True))
            for _ in range(len(entries) - self.max_entries):
                entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, request_id: str) -> np.ndarray | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.pop(request_id, None)
            while self._entries:  # drop expired ones from the old end
                oldest = next(iter(self._entries.values()))
                if oldest[0] > now:
                    break
                self._entries.popitem(last=False)
        if entry is None or entry[0] <= now:
            return None
        predicted, start, end = entry[1]
        return predicted[start:end]

    def join(self, predicted: np.ndarray, truth: Any) -> Joined:
        """Score one feedback; ``truth`` is one value per row of the request (a scalar for one row)."""
        values = truth if isinstance(truth, list) else [truth]
        if len(values) != predicted.shape[0]:
            raise FeedbackError(
                "invalid",
                f"'truth' has {len(values)} value(s); the request had "
                f"{predicted.shape[0]} row(s): send one value per row",
            )
        if self.metric == "accuracy":
            if not all(
                (isinstance(v, (str, int)) and not isinstance(v, bool)) or isinstance(v, bool) for v in values
            ):
                raise FeedbackError(
                    "invalid", "'truth' must be the class label (a string or an integer) per row"
                )
            correct = sum(
                category_key(p) == category_key(v) for p, v in zip(predicted.tolist(), values, strict=True)
            )
            outcomes = [1.0] * correct + [0.0] * (len(values) - correct)
            result = Joined(correct, len(values), 0.0)
        else:
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
            ):
                raise FeedbackError("invalid", "'truth' must be a finite number per row")
            errors = np.abs(predicted.astype(np.float64) - np.asarray(values, dtype=np.float64))
            outcomes = errors.tolist()
            result = Joined(0, len(values), float(errors.sum()))
        with self._lock:
            for outcome in outcomes:
                if len(self._outcomes) == self._outcomes.maxlen:
                    self._sum -= self._outcomes[0]
                self._outcomes.append(outcome)
                self._sum += outcome
            self.joined += 1
        return result

    def live(self) -> tuple[float | None, int]:
        """The live figure (accuracy or MAE) over the last window, and how many rows it covers."""
        with self._lock:
            n = len(self._outcomes)
            return (self._sum / n if n else None), n
