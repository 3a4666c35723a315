"""The ASGI application: the Open Inference Protocol (KServe v2) REST API for one kernel.

Written directly against ASGI rather than a framework's request/response objects: the inference
path is the product's hot path and every microsecond of per-request overhead shows up in the
benchmark table (issue 6). Routing is a handful of fixed paths, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shim import __version__
from shim.protocol.codec import Limits, ProtocolError, decode_request
from shim.runtimes.base import OutOfMemory
from shim.server.audit import AuditLogger, fingerprint
from shim.server.batcher import ModelFailure, QueueFull
from shim.server.metrics import ServerMetrics
from shim.server.model_service import DRAINING, ModelService
from shim.server.openapi import OPENAPI_PATH, build_openapi
from shim.server.ratelimit import RateLimiter
from shim.server.responses import encode_infer_response, error_body, json_bytes
from shim.server.settings import ServerSettings
from shim.spec.kernel import Kernel

log = logging.getLogger("shim.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
EXTENSIONS = ["binary_tensor_data", "health", "metrics", "model_configuration", "statistics"]
OPEN_PATHS = {"/health", "/v2/health/live", "/v2/health/ready", "/metrics"}
#: Per-request facts the access checks leave in the ASGI scope for the audit line.
PRINCIPAL_KEY, STARTED_KEY = "kernelshim.principal", "kernelshim.started"


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class InferenceApp:
    """One process serving one kernel."""

    def __init__(self, kernel: Kernel, settings: ServerSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.metrics = ServerMetrics(kernel.name, kernel.version)
        self.in_flight = 0
        self.service = ModelService(kernel, settings, self.metrics, lambda: self.in_flight)
        # read at scrape time: the hot path only keeps its plain counter
        self.metrics.in_flight.set_function(lambda: self.in_flight)
        self.metrics.queue_depth.set_function(
            lambda: self.service.batcher.depth if self.service.batcher else 0)
        self.specs = {t.name: t for t in kernel.inputs}
        self.output_names = [t.name for t in kernel.outputs]
        self.limits = Limits(settings.max_elements_per_tensor, kernel.batching.max_batch_size)
        self._tokens = tuple(t.encode() for t in settings.auth_tokens)
        self._audit = (AuditLogger(kernel.name, kernel.version, settings.audit_log_inputs)
                       if settings.audit_log else None)
        self._limiter = (RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
                         if settings.rate_limit_per_s > 0 else None)
        # one boolean on the hot path when authentication, rate limiting and audit are all off
        self._guarded = bool(self._tokens) or self._limiter is not None or self._audit is not None
        self._openapi = json_bytes(build_openapi(kernel, auth=bool(self._tokens)))
        self._model_metadata = json_bytes({
            "name": kernel.name,
            "versions": [kernel.version],
            "platform": PLATFORMS[kernel.framework],
            "inputs": [t.to_v2() for t in kernel.inputs],
            "outputs": [t.to_v2() for t in kernel.outputs],
        })
        self._model_config = json_bytes(self._config())

    # -- ASGI entry ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.service.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.service.drain()
                await asyncio.get_running_loop().run_in_executor(None, self.service.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if self._guarded and path not in OPEN_PATHS:
                self._admit(scope)
            if path.startswith("/v2/models/"):
                await self._model_route(path, method, scope, receive, send)
            elif path == "/v2/health/live":
                self._expect(method, "GET")
                await _respond(send, 200, b'{"live":true}')
            elif path == "/v2/health/ready" or path == "/health":
                self._expect(method, "GET")
                await self._readiness(send)
            elif path == "/v2":
                self._expect(method, "GET")
                await _respond(send, 200, json_bytes(self._server_metadata()))
            elif path == "/metrics":
                self._expect(method, "GET")
                await _respond(send, 200, generate_latest(self.metrics.registry),
                               CONTENT_TYPE_LATEST.encode())
            elif path == OPENAPI_PATH:
                self._expect(method, "GET")
                await _respond(send, 200, self._openapi)
            else:
                raise HTTPError(404, f"no such endpoint: {method} {path}")
        except HTTPError as exc:
            if self._audit is not None and (exc.status in (401, 429) or path.endswith("/infer")):
                self._audit.record(client=_client(scope), principal=scope.get(PRINCIPAL_KEY), path=path,
                                   status=exc.status, error=str(exc),
                                   latency_s=time.perf_counter() - scope.get(STARTED_KEY, 0.0))
            await _respond(send, exc.status, error_body(str(exc)), headers=exc.headers)

    @staticmethod
    def _expect(method: str, allowed: str) -> None:
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            raise HTTPError(405, f"method {method} not allowed here; use {allowed}",
                            [(b"allow", allowed.encode())])

    def _admit(self, scope: Scope) -> None:
        """Authentication, then the caller's rate limit; only for paths outside OPEN_PATHS."""
        if self._audit is not None:
            scope[STARTED_KEY] = time.perf_counter()
        if self._tokens:
            self._authorize(scope)
        if self._limiter is not None:
            client = scope.get(PRINCIPAL_KEY) or _client_host(scope)
            wait_s = self._limiter.acquire(client)
            if wait_s:
                raise HTTPError(429, f"rate limit of {self.settings.rate_limit_per_s:g} requests/s exceeded "
                                f"for this client; retry after {wait_s:.3f}s",
                                [(b"retry-after", RateLimiter.retry_after_header(wait_s))])

    def _authorize(self, scope: Scope) -> None:
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                presented = value[7:].strip()
            elif name == b"x-api-key":
                presented = value.strip()
        scope[PRINCIPAL_KEY] = fingerprint(presented) if presented else None
        if not presented or not any(hmac.compare_digest(presented, t) for t in self._tokens):
            reason = "missing credentials" if not presented else "invalid credentials"
            log.warning("unauthorized request", extra={"path": scope["path"], "client": _client(scope),
                                                       "reason": reason})
            raise HTTPError(401, f"{reason}: send 'Authorization: Bearer <token>' or 'X-API-Key: <token>'",
                            [(b"www-authenticate", b'Bearer realm="kernelshim"')])

    async def _readiness(self, send: Send) -> None:
        service = self.service
        if service.ready:
            await _respond(send, 200, b'{"ready":true}')
        else:
            await _respond(send, 503, json_bytes({"ready": False, "state": service.state,
                                                  "reason": service.reason}))

    # -- /v2/models/... -----------------------------------------------------------------------

    async def _model_route(self, path: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        parts = path[len("/v2/models/"):].split("/")
        name, rest = parts[0], parts[1:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        action = rest[0] if len(rest) == 1 else ("" if not rest else None)
        if action not in ("", "ready", "infer", "config", "stats"):
            raise HTTPError(404, f"no such endpoint: {method} {path}")
        if name != self.kernel.name:
            raise HTTPError(404, f"unknown model {name!r}; this server serves {self.kernel.name!r}")
        if version not in (None, "", self.kernel.version):
            raise HTTPError(404, f"unknown version {version!r} of model {name!r}; "
                            f"available: {self.kernel.version}")
        if action == "infer":
            self._expect(method, "POST")
            await self._infer(scope, receive, send)
            return
        self._expect(method, "GET")
        if action == "":
            await _respond(send, 200, self._model_metadata)
        elif action == "ready":
            await self._readiness(send)
        elif action == "config":
            await _respond(send, 200, self._model_config)
        else:
            await _respond(send, 200, json_bytes(self._stats()))

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        self.in_flight += 1
        status, request_id, header_id = 200, None, None
        document = decoded = None
        extra_headers: list[tuple[bytes, bytes]] = []
        try:
            service = self.service
            headers = scope["headers"]
            header_length = encoding = None
            for key, value in headers:
                if key == b"inference-header-content-length":
                    header_length = value
                elif key == b"content-length" and int(value or 0) > self.settings.max_body_bytes:
                    raise HTTPError(413, f"request body of {int(value)} bytes exceeds the limit of "
                                    f"{self.settings.max_body_bytes} bytes")
                elif key == b"content-encoding":
                    encoding = value.lower()
                elif key == b"x-request-id":
                    header_id = value.decode("latin-1")
            if not service.ready and service.state != DRAINING:  # draining: finish what still arrives
                raise HTTPError(503, f"model {self.kernel.name!r} is not ready: {service.reason}",
                                [(b"retry-after", str(self.settings.retry_after_s).encode())])
            body = await self._read_body(receive)
            if encoding and encoding != b"identity":
                body = self._decompress(body, encoding)
            json_part, tail = _split_binary(body, header_length)
            try:
                document = orjson.loads(json_part)
            except orjson.JSONDecodeError as exc:
                raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
            if isinstance(document, dict) and isinstance(document.get("id"), str):
                request_id = document["id"]
            decoded = decode_request(document, self.specs, self.output_names, tail, self.limits)
            assert service.batcher is not None
            outputs = await service.batcher.submit(decoded.inputs)
            payload, json_length = encode_infer_response(
                self.kernel.name, self.kernel.version, decoded.id, self.kernel.outputs, outputs,
                decoded.outputs, decoded.binary_outputs_default,
            )
            if json_length is not None:
                extra_headers.append((b"inference-header-content-length", str(json_length).encode()))
                await _respond(send, 200, payload, OCTETS, extra_headers)
            else:
                await _respond(send, 200, payload, JSON, extra_headers)
        except ProtocolError as exc:
            status = exc.status
            await _respond(send, status, error_body(str(exc)))
        except HTTPError as exc:
            status = exc.status
            await _respond(send, status, error_body(str(exc)), headers=exc.headers)
        except QueueFull as exc:
            status = 503
            await _respond(send, 503, error_body(f"{exc}; retry later"),
                           headers=[(b"retry-after", str(self.settings.retry_after_s).encode())])
        except OutOfMemory as exc:
            status = 503
            await _respond(send, 503, error_body(str(exc)),
                           headers=[(b"retry-after", str(self.settings.retry_after_s).encode())])
        except ModelFailure as exc:
            status = 500
            await _respond(send, 500, error_body(str(exc)))
        except ClientGone:
            status = 499
        finally:
            self.in_flight -= 1
            elapsed = time.perf_counter() - started
            metrics.request_seconds.observe(elapsed)
            metrics.count(status)
            if self._audit is not None:
                self._audit.record(client=_client(scope), principal=scope.get(PRINCIPAL_KEY),
                                   path=scope["path"], status=status, latency_s=elapsed,
                                   request_id=request_id or header_id,
                                   arrays=decoded.inputs if decoded is not None else None, document=document)
            if status != 200:
                log.info("inference rejected", extra={
                    "request_id": request_id or header_id or uuid.uuid4().hex, "status": status,
                    "client": _client(scope),
                    "duration_ms": round(elapsed * 1000, 3)})
            elif log.isEnabledFor(logging.DEBUG):
                log.debug("inference", extra={"request_id": request_id or header_id or uuid.uuid4().hex,
                                              "status": status, "duration_ms": round(elapsed * 1000, 3)})

    async def _read_body(self, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise HTTPError(413, f"request body exceeds the limit of {limit} bytes")
            return body
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _decompress(self, body: bytes, encoding: bytes) -> bytes:
        """gzip/deflate request bodies (tritonclient's request_compression_algorithm), bounded."""
        if encoding == b"gzip":
            window = 16 + zlib.MAX_WBITS
        elif encoding == b"deflate":
            window = zlib.MAX_WBITS
        else:
            raise HTTPError(415, f"unsupported Content-Encoding {encoding.decode('latin-1')!r}; "
                            "use gzip or deflate")
        decompressor = zlib.decompressobj(window)
        try:
            data = decompressor.decompress(body, self.settings.max_body_bytes + 1)
        except zlib.error as exc:
            raise HTTPError(400, f"request body is not valid {encoding.decode()} data: {exc}") from None
        if len(data) > self.settings.max_body_bytes or decompressor.unconsumed_tail:
            raise HTTPError(413, f"decompressed body exceeds the limit of "
                            f"{self.settings.max_body_bytes} bytes")
        return data

    # -- metadata -----------------------------------------------------------------------------

    def _server_metadata(self) -> dict[str, Any]:
        return {
            "name": "kernelshim",
            "version": __version__,
            "extensions": EXTENSIONS,
            "model": {"name": self.kernel.name, "version": self.kernel.version, "state": self.service.state},
            "runtime": self.service.describe_runtime(),
        }

    def _config(self) -> dict[str, Any]:
        batching = self.kernel.batching
        strip = 1 if batching.enabled else 0

        def tensor(t: Any) -> dict[str, Any]:
            data_type = "STRING" if t.datatype.is_bytes else t.datatype.name
            return {"name": t.name, "data_type": f"TYPE_{data_type}",
                    "dims": list(t.shape[strip:])}

        config: dict[str, Any] = {
            "name": self.kernel.name,
            "platform": PLATFORMS[self.kernel.framework],
            "max_batch_size": batching.max_batch_size,
            "input": [tensor(t) for t in self.kernel.inputs],
            "output": [tensor(t) for t in self.kernel.outputs],
        }
        if batching.enabled:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": batching.max_queue_delay_us}
        return config

    def _stats(self) -> dict[str, Any]:
        return {"model_stats": [{"name": self.kernel.name, "version": self.kernel.version,
                                 "state": self.service.state, "inflight": self.in_flight}]}


def _split_binary(body: bytes, header_length: bytes | None) -> tuple[bytes | memoryview, memoryview | None]:
    if header_length is None:
        return body, None
    try:
        length = int(header_length)
    except ValueError:
        raise HTTPError(400, "Inference-Header-Content-Length must be an integer") from None
    if length < 0 or length > len(body):
        raise HTTPError(400, f"Inference-Header-Content-Length {length} is outside the body of "
                        f"{len(body)} bytes")
    view = memoryview(body)
    return view[:length], view[length:]


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    response_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        response_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
