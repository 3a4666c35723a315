"""The REST transport: the Open Inference Protocol (KServe v2) REST API over the dataplane.

Written directly against ASGI rather than a framework's request/response objects: the inference
path is the product's hot path and every microsecond of per-request overhead shows up in the
benchmark table. This module only speaks HTTP: it matches a route from ``ROUTES`` (the one list
of endpoints, which also says which are open to probes and is checked against the OpenAPI
document), reads and decompresses bodies, decodes JSON with ``shim.protocol.codec`` and encodes
responses; everything else (admission, readiness, submission, errors, metrics, audit) is the
transport-independent ``shim.server.dataplane``, shared with gRPC.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shim.protocol.codec import ProtocolError, decode_request
from shim.server.dataplane import Call, Dataplane, DataplaneError
from shim.server.openapi import OPENAPI_PATH, build_openapi
from shim.server.responses import encode_infer_response, error_body, json_bytes
from shim.server.settings import ServerSettings
from shim.spec.kernel import Kernel

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"
#: Largest feedback body: an id and the truth of one request's rows.
FEEDBACK_BODY_BYTES = 1024 * 1024
OCTETS = b"application/octet-stream"


@dataclass(frozen=True)
class Route:
    """One endpoint: its path (OpenAPI template), method, handler and whether probes reach it
    without credentials or rate limits."""

    path: str
    method: str
    handler: str
    open: bool = False


_MODEL = "/v2/models/{model_name}"
_VERSION = "/v2/models/{model_name}/versions/{model_version}"
#: Every endpoint, once: routing, the open (probe) paths and the OpenAPI document follow from it.
ROUTES: tuple[Route, ...] = (
    Route("/v2/health/live", "GET", "_live", open=True),
    Route("/v2/health/ready", "GET", "_ready", open=True),
    Route("/health", "GET", "_ready", open=True),
    Route("/metrics", "GET", "_metrics", open=True),
    Route("/v2", "GET", "_server_metadata"),
    Route(OPENAPI_PATH, "GET", "_openapi"),
    *(Route(prefix + suffix, method, handler)
      for prefix in (_MODEL, _VERSION)
      for suffix, method, handler in (("", "GET", "_model_metadata"), ("/ready", "GET", "_ready"),
                                      ("/config", "GET", "_model_config"), ("/stats", "GET", "_model_stats"),
                                      ("/monitoring", "GET", "_monitoring"),
                                      ("/feedback", "POST", "_feedback"),
                                      ("/infer", "POST", "_infer"))),
)
_FIXED = {route.path: route for route in ROUTES if "{" not in route.path}
#: "/ready" -> route, "" -> model metadata: the same actions serve with and without a version
_MODEL_ACTIONS = {route.path[len(_MODEL):]: route for route in ROUTES
                  if route.path.startswith(_MODEL) and "/versions/" not in route.path}


class HTTPError(DataplaneError):
    """A REST-only failure (bad path, method, body framing)."""


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class InferenceApp:
    """The REST transport of one process serving one kernel."""

    def __init__(self, kernel: Kernel, settings: ServerSettings, dataplane: Dataplane | None = None) -> None:
        self.kernel = kernel
        self.settings = settings
        self.dataplane = dataplane or Dataplane(kernel, settings)
        self.service = self.dataplane.service
        self.metrics = self.dataplane.metrics
        self._openapi_body = json_bytes(build_openapi(kernel, auth=bool(self.dataplane.tokens)))
        self._model_metadata_body = json_bytes(self.dataplane.model_metadata())
        self._model_config_body = json_bytes(self.dataplane.model_config())
        #: other transports on the same dataplane, started and stopped with this one (gRPC)
        self.companions: list[Any] = []
        #: set on SIGTERM: every response from then on closes its connection (see server/main.py)
        self.closing = False
        #: HTTP requests begun; the shutdown watches it to see when clients have gone quiet
        self.requests_begun = 0

    @property
    def in_flight(self) -> int:
        return self.dataplane.in_flight

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
                try:
                    for companion in self.companions:
                        await companion.start()
                except Exception as exc:  # a port in use: the process must not run half-served
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.service.drain()
                for companion in self.companions:  # in-flight gRPC calls finish, new ones are refused
                    await companion.stop(self.settings.graceful_timeout_s)
                await asyncio.get_running_loop().run_in_executor(None, self.service.stop)
                if self.dataplane.monitor is not None:
                    self.dataplane.monitor.stop()
                if self.dataplane.tracer is not None:
                    self.dataplane.tracer.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        dataplane = self.dataplane
        call = None
        self.requests_begun += 1
        if self.closing:
            send = _closing_connection(send)
        try:
            route, model, version = self._match(path, method)
            if dataplane.guarded and not route.open:
                call = Call("rest", _client(scope), path, time.perf_counter())
                presented = _credentials(scope)
                dataplane.admit(call, presented, _client_host(scope))
            if model is not None:
                dataplane.check_model(model, version)
            await getattr(self, route.handler)(scope, receive, send, call)
        except DataplaneError as exc:
            if dataplane.audit is not None and call is not None and exc.status in (401, 429):
                call.status = exc.status
                dataplane.audit.record(client=call.client, principal=call.principal, path=path,
                                       status=exc.status, error=str(exc),
                                       latency_s=time.perf_counter() - call.started)
            await _respond(send, exc.status, error_body(str(exc)), headers=exc.headers)

    def _match(self, path: str, method: str) -> tuple[Route, str | None, str | None]:
        """The route for ``path`` (and the model name and version in it), or a 404/405."""
        model = version = None
        route = _FIXED.get(path)
        if route is None and path.startswith("/v2/models/"):
            parts = path[len("/v2/models/"):].split("/")
            model, rest = parts[0], parts[1:]
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
            suffix = "/" + rest[0] if len(rest) == 1 else ("" if not rest else None)
            route = _MODEL_ACTIONS.get(suffix) if suffix is not None and model else None
        if route is None:
            raise HTTPError("not_found", f"no such endpoint: {method} {path}")
        if method != route.method and not (route.method == "GET" and method == "HEAD"):
            raise HTTPError("method", f"method {method} not allowed here; use {route.method}",
                            [(b"allow", route.method.encode())])
        return route, model, version

    # -- handlers (scope, receive, send, call) ------------------------------------------------

    async def _live(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, b'{"live":true}')

    async def _ready(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        if self.dataplane.ready:
            await _respond(send, 200, b'{"ready":true}')
        else:
            await _respond(send, 503, json_bytes(self.dataplane.readiness()))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode())

    async def _server_metadata(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, json_bytes(self.dataplane.server_metadata()))

    async def _openapi(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, self._openapi_body)

    async def _model_metadata(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, self._model_metadata_body)

    async def _model_config(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, self._model_config_body)

    async def _model_stats(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, json_bytes(self.dataplane.model_stats()))

    async def _monitoring(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        await _respond(send, 200, json_bytes(self.dataplane.monitoring_report()))

    async def _feedback(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        if self.dataplane.monitor is None:
            self.dataplane.monitoring_report()  # raises the 404 that says why
        body = await self._read_body(receive, FEEDBACK_BODY_BYTES)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError("invalid", f"feedback body is not valid JSON: {exc}") from None
        await _respond(send, 200, json_bytes(self.dataplane.feedback(document)))

    async def _infer(self, scope: Scope, receive: Receive, send: Send, call: Call | None) -> None:
        dataplane = self.dataplane
        call = call or Call("rest", "", scope["path"], time.perf_counter())
        dataplane.in_flight += 1
        document = decoded = None
        header_id = None
        trace = None
        if dataplane.tracer is not None:
            trace = dataplane.tracer.begin(_trace_carrier(scope), "rest", scope["path"], call.started)
        try:
            header_length = encoding = None
            for key, value in scope["headers"]:
                if key == b"inference-header-content-length":
                    header_length = value
                elif key == b"content-length" and int(value or 0) > self.settings.max_body_bytes:
                    raise HTTPError("too_large", f"request body of {int(value)} bytes exceeds the limit of "
                                    f"{self.settings.max_body_bytes} bytes")
                elif key == b"content-encoding":
                    encoding = value.lower()
                elif key == b"x-request-id":
                    header_id = value.decode("latin-1")
            dataplane.check_ready_for_inference()
            body = await self._read_body(receive)
            if encoding and encoding != b"identity":
                body = self._decompress(body, encoding)
            json_part, tail = _split_binary(body, header_length)
            try:
                document = orjson.loads(json_part)
            except orjson.JSONDecodeError as exc:
                raise HTTPError("invalid", f"request body is not valid JSON: {exc}") from None
            if isinstance(document, dict) and isinstance(document.get("id"), str):
                call.request_id = document["id"]
            try:
                decoded = decode_request(document, dataplane.specs, dataplane.output_names, tail,
                                         dataplane.limits)
            except ProtocolError as exc:
                raise DataplaneError.from_protocol(exc) from None
            request_id = decoded.id if dataplane.monitor is None else dataplane.request_id(decoded.id)
            if trace is None:
                outputs = await dataplane.infer(decoded.inputs, request_id)
            else:
                trace.decoded = time.perf_counter()
                outputs = await dataplane.infer(decoded.inputs, request_id, trace.execution)
            call.request_id = request_id
            payload, json_length = encode_infer_response(
                self.kernel.name, self.kernel.version, request_id, self.kernel.outputs, outputs,
                decoded.outputs, decoded.binary_outputs_default,
            )
            extra = None
            if trace is not None:
                trace.encoded = time.perf_counter()
                extra = [(b"traceparent", dataplane.tracer.traceparent(trace).encode())]
            if json_length is not None:
                await _respond(send, 200, payload, OCTETS,
                               [(b"inference-header-content-length", str(json_length).encode()),
                                *(extra or ())])
            else:
                await _respond(send, 200, payload, JSON, extra)
        except DataplaneError as exc:
            call.status = exc.status
            await _respond(send, exc.status, error_body(str(exc)), headers=exc.headers)
        except ClientGone:
            call.status = 499
        finally:
            dataplane.in_flight -= 1
            if call.request_id is None:
                call.request_id = header_id
            if not call.client:
                call.client = _client(scope)
            dataplane.finish(call, decoded.inputs if decoded is not None else None, document)
            if trace is not None:
                dataplane.tracer.end(trace, call.status, call.request_id)

    async def _read_body(self, receive: Receive, limit: int | None = None) -> bytes:
        limit = limit or self.settings.max_body_bytes
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > limit:
                raise HTTPError("too_large", f"request body exceeds the limit of {limit} bytes")
            return body
        chunks, size = [body], len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError("too_large", f"request body exceeds the limit of {limit} bytes")
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
            shown = encoding.decode("latin-1")
            raise HTTPError("unsupported_encoding",
                            f"unsupported Content-Encoding {shown!r}; use gzip or deflate")
        decompressor = zlib.decompressobj(window)
        try:
            data = decompressor.decompress(body, self.settings.max_body_bytes + 1)
        except zlib.error as exc:
            raise HTTPError("invalid", f"request body is not valid {encoding.decode()} data: {exc}") from None
        if len(data) > self.settings.max_body_bytes or decompressor.unconsumed_tail:
            raise HTTPError("too_large", f"decompressed body exceeds the limit of "
                            f"{self.settings.max_body_bytes} bytes")
        return data

def _split_binary(body: bytes, header_length: bytes | None) -> tuple[bytes | memoryview, memoryview | None]:
    if header_length is None:
        return body, None
    try:
        length = int(header_length)
    except ValueError:
        raise HTTPError("invalid", "Inference-Header-Content-Length must be an integer") from None
    if length < 0 or length > len(body):
        raise HTTPError("invalid", f"Inference-Header-Content-Length {length} is outside the body of "
                        f"{len(body)} bytes")
    view = memoryview(body)
    return view[:length], view[length:]


def _trace_carrier(scope: Scope) -> dict[str, str]:
    """The W3C trace context headers of the request (what the propagator reads)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")}


def _credentials(scope: Scope) -> bytes | None:
    """The token from ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    presented = None
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            presented = value[7:].strip()
        elif name == b"x-api-key":
            presented = value.strip()
    return presented or None


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _closing_connection(send: Send) -> Send:
    """``send`` with ``Connection: close`` on the response: while the server drains, a client
    must not write its next request on this connection, where it could cross the server's close
    (the keep-alive race, RFC 9112 9.6); it opens a new one and is answered or refused cleanly."""

    async def closing_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
        await send(message)

    return closing_send


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    response_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        response_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
