"""The audit trail: one structured line per inference request, including the refused ones.

Security reviews ask "who called which model, when, with what, and what happened?" without
wanting the payload itself (it may be personal data). Each line names the caller by a
non-reversible fingerprint of the credential it presented (never the credential), the model and
version, the request id, a summary of the input tensors (name, datatype, shape) and the outcome.
Raw input values are logged only when ``audit_log_inputs`` is switched on explicitly.

Lines go to the ``shim.audit`` logger, so the server's JSON log handler writes them and log
shippers can route them by ``logger`` to a separate, longer-retained store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

audit_log = logging.getLogger("shim.audit")

#: Bound on what one audit line may carry, so a hostile request cannot flood the log.
MAX_TENSORS = 16
MAX_LOGGED_VALUES = 64
MAX_FIELD_CHARS = 128


def fingerprint(credential: bytes) -> str:
    """First 8 hex digits of the credential's SHA-256: enough to tell callers apart, useless to replay."""
    return hashlib.sha256(credential).hexdigest()[:8]


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:MAX_FIELD_CHARS]


def summarize_arrays(arrays: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Name, dtype and shape of decoded inputs (what actually reached the model)."""
    return [
        {"name": _clip(name), "dtype": str(a.dtype), "shape": list(a.shape)}
        for name, a in list(arrays.items())[:MAX_TENSORS]
    ]


def summarize_document(document: Any) -> list[dict[str, Any]]:
    """Best-effort summary of a request body that did not decode: what the client claimed to send."""
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        return []
    summary = []
    for entry in document["inputs"][:MAX_TENSORS]:
        if not isinstance(entry, dict):
            summary.append({"invalid": _clip(type(entry).__name__)})
            continue
        shape = entry.get("shape")
        summary.append(
            {
                "name": _clip(entry.get("name")),
                "datatype": _clip(entry.get("datatype")),
                "shape": shape[:8] if isinstance(shape, list) else _clip(shape),
            }
        )
    return summary


def _raw_values(arrays: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
    values = {}
    for name, array in list(arrays.items())[:MAX_TENSORS]:
        flat = array.ravel()[:MAX_LOGGED_VALUES]
        values[name] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in flat.tolist()]
    return values


class AuditLogger:
    """Writes audit lines; constructed only when ``settings.audit_log`` is on."""

    def __init__(self, model: str, version: str, include_inputs: bool = False) -> None:
        self.model = model
        self.version = version
        self.include_inputs = include_inputs

    def record(
        self,
        *,
        client: str,
        principal: str | None,
        path: str,
        status: int,
        latency_s: float,
        request_id: str | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        document: Any = None,
        error: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "event": "inference",
            "client": client,
            "principal": principal or "anonymous",
            "model": self.model,
            "version": self.version,
            "path": _clip(path),
            "request_id": _clip(request_id) if request_id is not None else None,
            "inputs": summarize_arrays(arrays) if arrays is not None else summarize_document(document),
            "status": status,
            "latency_ms": round(latency_s * 1000, 3),
        }
        if error:
            entry["error"] = error[:300]
        if self.include_inputs and arrays is not None:
            entry["input_values"] = _raw_values(arrays)
        audit_log.info("audit", extra=entry)
