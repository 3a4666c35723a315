"""Server settings: command-line options first, then ``KERNELSHIM_*`` environment variables.

Containers are configured through the environment (Kubernetes, the Terraform module), people
through flags; both end up in one frozen ``ServerSettings``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ENV_PREFIX = "KERNELSHIM_"


@dataclass(frozen=True)
class ServerSettings:
    kernel_dir: str = "/kernel"
    host: str = "0.0.0.0"
    port: int = 8080
    grpc_port: int = 8081  # the Open Inference Protocol's gRPC transport (KServe's port); 0 turns it off
    device: str = "auto"
    log_format: str = "json"
    log_level: str = "info"
    workers: int = 1
    threads: int = 0  # runtime threads per worker; 0 = CPU quota / workers
    # torch.export kernels: off | default | max-autotune (torch.compile of the module; see
    # docs/benchmarks.md "torch.export (issue 13)" for when it pays off)
    torch_compile: str = "off"
    max_body_bytes: int = 64 * 1024 * 1024
    max_elements_per_tensor: int = 16 * 1024 * 1024
    max_queue_size: int = 1024
    # SIGTERM: first keep answering (each response closing its connection) until clients go quiet
    # or drain_s passes, then stop accepting and give in-flight requests graceful_timeout_s
    drain_s: float = 2.0
    graceful_timeout_s: float = 30.0
    retry_after_s: int = 1
    # How long a thread may hold the GIL while another waits for it (CPython's default is 5000).
    # The model worker needs the GIL back for a moment after every execution; with the default it
    # can wait up to 5 ms behind the event loop decoding JSON. Kept while the model's executions
    # take 1 ms of CPU or more; a faster CPU model gets the default back (Batcher). 0 leaves the
    # interpreter alone. See docs/benchmarks.md.
    gil_switch_interval_us: int = 200
    # Once the model is loaded, freeze the loaded heap out of the garbage collector's sight and
    # raise the young generation's threshold (see ModelService); false keeps CPython's defaults
    gc_tuning: bool = True
    # access control and audit
    auth_tokens: tuple[str, ...] = field(default_factory=tuple)
    audit_log: bool = False
    audit_log_inputs: bool = False
    rate_limit_per_s: float = 0.0  # per client; 0 disables
    rate_limit_burst: int = 0
    # what the deployment (Terraform module, `shim tf vars`) says it runs; see server/deployment.py
    model_name: str = ""  # when set, must equal the kernel's name
    model_version: str = ""  # when set, must equal the kernel's version
    max_batch_size: int = -1  # -1: the contract's batching.max_batch_size; 0 turns batching off
    max_queue_delay_us: int = -1  # -1: the contract's batching.max_queue_delay_us

    def __post_init__(self) -> None:
        """Every out-of-range value is refused up front, naming the flag and variable to fix."""
        problems = [message for check, message in _RULES if not check(self)]
        if problems:
            raise ValueError("invalid server settings: " + "; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerSettings:
        data = json.loads(text)
        data["auth_tokens"] = tuple(data.get("auth_tokens") or ())
        return cls(**data)


#: (predicate, message) per setting, grouped as the fields are: network, runtime, limits, access.
_RULES: list[tuple[Any, str]] = []


def _add(name: str, ok: Any, expected: str) -> None:
    option = f"--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}"
    _RULES.append((lambda s, n=name, f=ok: f(getattr(s, n)),
                   f"{option} must be {expected}"))


_add("port", lambda v: 1 <= v <= 65535, "a TCP port (1-65535)")
_add("grpc_port", lambda v: 0 <= v <= 65535, "a TCP port (1-65535), or 0 to turn gRPC off")
_add("log_format", lambda v: v in ("json", "text"), "json or text")
_add("log_level", lambda v: v in ("debug", "info", "warning", "error"), "debug, info, warning or error")
_add("workers", lambda v: 1 <= v <= 256, "between 1 and 256")
_add("threads", lambda v: 0 <= v <= 1024, "between 0 (automatic) and 1024")
_add("torch_compile", lambda v: v in ("off", "default", "max-autotune"), "off, default or max-autotune")
_add("max_body_bytes", lambda v: 1024 <= v <= 2**31, "between 1 KiB and 2 GiB")
_add("max_elements_per_tensor", lambda v: 1 <= v <= 2**31, "between 1 and 2**31")
_add("max_queue_size", lambda v: v >= 1, "at least 1")
_add("drain_s", lambda v: 0 <= v <= 600, "between 0 and 600 seconds")
_add("graceful_timeout_s", lambda v: 0 <= v <= 3600, "between 0 and 3600 seconds")
_add("retry_after_s", lambda v: 0 <= v <= 3600, "between 0 and 3600 seconds")
_add("gil_switch_interval_us", lambda v: 0 <= v <= 1_000_000, "between 0 (CPython's default) and 1000000")
_add("rate_limit_per_s", lambda v: v >= 0, "0 (off) or a positive rate")
_add("rate_limit_burst", lambda v: v >= 0, "0 (the rate) or a positive count")
_add("max_batch_size", lambda v: v >= -1, "-1 (the contract's), 0 (off) or a positive size")
_add("max_queue_delay_us", lambda v: v >= -1, "-1 (the contract's) or microseconds")
_RULES.append((lambda s: s.grpc_port == 0 or s.grpc_port != s.port,
               "--grpc-port must differ from --port (or be 0 to turn gRPC off)"))


def _coerce(name: str, kind: Any, raw: str) -> Any:
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if name == "auth_tokens":
            return tuple(t.strip() for t in raw.split(",") if t.strip())
        return raw
    except ValueError:
        raise ValueError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}"
        ) from None


def settings_from_env(overrides: dict[str, Any], environ: dict[str, str] | None = None) -> ServerSettings:
    """Defaults < environment < explicit overrides (flags that were given)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for item in fields(ServerSettings):
        key = ENV_PREFIX + item.name.upper()
        if key in environ:
            values[item.name] = _coerce(item.name, item.type, environ[key])
    values.update({k: v for k, v in overrides.items() if v is not None})
    token_file = environ.get(ENV_PREFIX + "AUTH_TOKENS_FILE")
    if token_file and not values.get("auth_tokens"):
        with open(token_file, encoding="utf-8") as handle:
            values["auth_tokens"] = tuple(line.strip() for line in handle if line.strip())
    return ServerSettings(**values)
