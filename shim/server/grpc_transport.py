"""The gRPC transport: the Open Inference Protocol's ``GRPCInferenceService`` over the dataplane.

``grpc.aio`` on the same event loop as the REST transport, started and stopped with it (ASGI
lifespan), so one process, one dataplane, one batcher serve both. Each RPC only translates: the
request through ``shim.protocol.grpc_codec`` (the REST codec's checks), the answer into protobuf,
a ``DataplaneError`` into its gRPC status code (``shim.server.dataplane.ERRORS``). Credentials are
the REST tokens, sent as ``authorization: Bearer <token>`` (or ``x-api-key``) metadata; the message
size limit is the REST body limit. The standard ``grpc.health.v1.Health`` service answers SERVING
only while the model is ready, for Kubernetes gRPC probes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shim import __version__
from shim.protocol import grpc as oip
from shim.protocol.codec import ProtocolError
from shim.protocol.grpc_codec import decode_grpc_request, encode_grpc_response
from shim.server.dataplane import EXTENSIONS, Call, Dataplane, DataplaneError

log = logging.getLogger("shim.server")
_TYPE_NAMES = {"BYTES": "TYPE_STRING"}


def _credentials(context: Any) -> bytes | None:
    presented = None
    for key, value in context.invocation_metadata() or ():
        text = value if isinstance(value, str) else value.decode("latin-1")
        if key == "authorization" and text[:7].lower() == "bearer ":
            presented = text[7:].strip()
        elif key == "x-api-key":
            presented = text.strip()
    return presented.encode() if presented else None


def _peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5555`` -> ``127.0.0.1`` (the rate limit's client when unauthenticated)."""
    body = peer.split(":", 1)[1] if ":" in peer else peer
    return body.rsplit(":", 1)[0].strip("[]")


class InferenceServicer(oip.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: Dataplane) -> None:
        self.dataplane = dataplane
        metadata = dataplane.model_metadata()  # the REST document, as protobuf
        self._metadata = oip.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"],
            inputs=metadata["inputs"], outputs=metadata["outputs"],
        )
        self._config = self._model_config()

    def _model_config(self) -> Any:
        config = self.dataplane.model_config()

        def tensors(entries: list[dict[str, Any]], kind: Any) -> list[Any]:
            return [kind(name=e["name"], data_type=oip.DataType.Value(_TYPE_NAMES.get(e["data_type"][5:],
                                                                                       e["data_type"])),
                         dims=e["dims"]) for e in entries]

        return oip.ModelConfigResponse(config=oip.ModelConfig(
            name=config["name"], platform=config["platform"], max_batch_size=config["max_batch_size"],
            input=tensors(config["input"], oip.ModelInput), output=tensors(config["output"], oip.ModelOutput),
        ))

    async def _guard(self, context: Any, method: str) -> Call:
        call = Call("grpc", context.peer() or "-", method, time.perf_counter())
        if self.dataplane.guarded:
            try:
                self.dataplane.admit(call, _credentials(context), _peer_host(call.client))
            except DataplaneError as exc:
                call.status = exc.status
                if self.dataplane.audit is not None:
                    self.dataplane.audit.record(client=call.client, principal=call.principal, path=method,
                                                status=exc.status, error=str(exc), latency_s=0.0)
                await _abort(context, exc)
        return call

    async def _model(self, context: Any, name: str, version: str) -> None:
        try:
            self.dataplane.check_model(name, version)
        except DataplaneError as exc:
            await _abort(context, exc)

    # -- health and metadata (live and server-ready are open to probes, as on REST) ---------------
    async def ServerLive(self, request: Any, context: Any) -> Any:  # RPC names are the protocol's
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return oip.ServerReadyResponse(ready=self.dataplane.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        await self._guard(context, "ModelReady")
        await self._model(context, request.name, request.version)
        return oip.ModelReadyResponse(ready=self.dataplane.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        await self._guard(context, "ServerMetadata")
        return oip.ServerMetadataResponse(name="kernelshim", version=__version__, extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        await self._guard(context, "ModelMetadata")
        await self._model(context, request.name, request.version)
        return self._metadata

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        await self._guard(context, "ModelConfig")
        await self._model(context, request.name, request.version)
        return self._config

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        await self._guard(context, "ModelStatistics")
        if request.name:
            await self._model(context, request.name, request.version)
        kernel = self.dataplane.kernel
        return oip.ModelStatisticsResponse(model_stats=[oip.ModelStatistics(name=kernel.name,
                                                                            version=kernel.version)])

    # -- inference --------------------------------------------------------------------------------
    async def ModelInfer(self, request: Any, context: Any) -> Any:
        dataplane = self.dataplane
        if dataplane.guarded:
            call = await self._guard(context, "ModelInfer")
        else:  # the peer is looked up only if the call is logged (failure) or audited
            call = Call("grpc", "", "ModelInfer", time.perf_counter())
        call.request_id = request.id or None
        dataplane.in_flight += 1
        decoded = document = None
        failure: DataplaneError | None = None
        trace = None
        if dataplane.tracer is not None:
            carrier = {k: v for k, v in (context.invocation_metadata() or ())
                       if k in ("traceparent", "tracestate")}
            trace = dataplane.tracer.begin(carrier, "grpc", "ModelInfer", call.started)
        try:
            dataplane.check_model(request.model_name, request.model_version)
            dataplane.check_ready_for_inference()
            try:
                decoded, document = decode_grpc_request(request, dataplane.specs, dataplane.output_names,
                                                        dataplane.limits)
            except ProtocolError as exc:
                raise DataplaneError.from_protocol(exc) from None
            request_id = decoded.id if dataplane.monitor is None else dataplane.request_id(decoded.id)
            call.request_id = request_id
            if trace is not None:
                trace.decoded = time.perf_counter()
            outputs = await dataplane.infer(decoded.inputs, request_id, trace.execution if trace else None)
            requested = [o.name for o in decoded.outputs] if decoded.outputs else None
            response = encode_grpc_response(oip.ModelInferResponse(), dataplane.kernel.name,
                                            dataplane.kernel.version, request_id, dataplane.kernel.outputs,
                                            outputs, requested)
            if trace is not None:
                trace.encoded = time.perf_counter()
            return response
        except DataplaneError as exc:
            failure = exc
            call.status = exc.status
        except asyncio.CancelledError:
            call.status = 499
            raise
        finally:
            dataplane.in_flight -= 1
            if not call.client and (call.status != 200 or dataplane.audit is not None):
                call.client = context.peer() or "-"
            dataplane.finish(call, decoded.inputs if decoded is not None else None, document)
            if trace is not None:
                dataplane.tracer.end(trace, call.status, call.request_id)
        await _abort(context, failure)


async def _abort(context: Any, exc: DataplaneError) -> None:
    trailing = (("retry-after", str(exc.retry_after_s)),) if exc.retry_after_s is not None else ()
    if trailing:
        context.set_trailing_metadata(trailing)
    await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))


class HealthServicer(health_pb2_grpc.HealthServicer):
    """``grpc.health.v1.Health``: SERVING only while the model is ready."""

    def __init__(self, dataplane: Dataplane) -> None:
        self.dataplane = dataplane
        self.services = {"", oip.SERVICE_NAME, dataplane.kernel.name}

    def _status(self, service: str) -> Any:
        serving = health_pb2.HealthCheckResponse.SERVING
        return serving if self.dataplane.ready else health_pb2.HealthCheckResponse.NOT_SERVING

    async def Check(self, request: Any, context: Any) -> Any:
        if request.service not in self.services:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self._status(request.service))

    async def Watch(self, request: Any, context: Any) -> Any:
        if request.service not in self.services:
            yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
            return
        last = None
        while True:
            status = self._status(request.service)
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            await asyncio.sleep(0.25)


class GrpcTransport:
    """The gRPC server, started and stopped with the REST transport's lifespan."""

    def __init__(self, dataplane: Dataplane, host: str, port: int, reuse_port: bool) -> None:
        self.dataplane = dataplane
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.reuse_port = reuse_port
        self.server: Any = None

    async def start(self) -> None:
        """Create the server on the running loop (``grpc.aio`` binds to the loop it is made on)."""
        limit = self.dataplane.settings.max_body_bytes
        self.server = aio.server(options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", max(limit, 256 * 1024 * 1024)),
            ("grpc.so_reuseport", 1 if self.reuse_port else 0),
        ])
        oip.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.dataplane), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(self.dataplane), self.server)
        try:
            self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise RuntimeError(f"cannot listen for gRPC on {self.address}: {exc} (use --grpc-port 0 to turn "
                               "gRPC off, or another port)") from None
        await self.server.start()
        log.info("gRPC listening", extra={"address": self.address})

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let in-flight ones finish (up to ``grace_s``), then close."""
        if self.server is not None:
            await self.server.stop(grace_s)
