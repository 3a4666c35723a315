"""OpenTelemetry traces from a real ``shim serve`` to a real OTLP/HTTP receiver on loopback.

The receiver is a plain HTTP server in this process that decodes each export with
``opentelemetry-proto`` (ExportTraceServiceRequest), as a collector would.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import free_port
from .monitoring_kernels import infer_body, iris_copy

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


class Receiver:
    def __init__(self) -> None:
        self.spans: list = []
        self.paths: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource_spans in request.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans.extend(scope_spans.spans)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans_of(self, trace_id: bytes, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans if s.trace_id == trace_id]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{len([s for s in self.spans if s.trace_id == trace_id])} spans of the trace "
            f"arrived; {len(self.spans)} in all"
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_each_request_yields_its_spans_under_the_callers_trace(
    server_factory, tmp_path: Path, receiver: Receiver
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "iris-under-test",
    }
    server = server_factory(iris_copy(tmp_path / "iris"), env=env)
    callers = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(3):
            trace_id, parent_id = f"{i + 1:032x}", f"{i + 7:016x}"
            response = client.post(
                "/v2/models/iris-classifier/infer",
                json=infer_body("X", np.ones((2, 4))),
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
            )
            assert response.status_code == 200
            returned = response.headers["traceparent"].split("-")
            assert returned[1] == trace_id and returned[2] != parent_id
            callers.append((bytes.fromhex(trace_id), bytes.fromhex(parent_id), bytes.fromhex(returned[2])))
    for trace_id, parent_id, request_span_id in callers:
        spans = {s.name: s for s in receiver.spans_of(trace_id, 5)}
        assert set(spans) == {"infer", "decode", "queue", "execute", "encode"}
        request = spans["infer"]
        assert request.parent_span_id == parent_id and request.span_id == request_span_id
        for name in ("decode", "queue", "execute", "encode"):
            child = spans[name]
            assert child.parent_span_id == request.span_id
            assert request.start_time_unix_nano <= child.start_time_unix_nano <= child.end_time_unix_nano
            assert child.end_time_unix_nano <= request.end_time_unix_nano
        attributes = {a.key: a.value for a in spans["execute"].attributes}
        assert attributes["kernelshim.rows"].int_value == 2
        assert attributes["kernelshim.batch_size"].int_value == 1
        assert attributes["kernelshim.device"].string_value == "cpu"
        request_attributes = {a.key: a.value for a in request.attributes}
        assert request_attributes["http.response.status_code"].int_value == 200
    assert receiver.paths and all(p == "/v1/traces" for p in receiver.paths)


def test_without_otel_variables_there_are_no_traces(
    server_factory, tmp_path: Path, receiver: Receiver
) -> None:
    server = server_factory(
        iris_copy(tmp_path / "iris"),
        env={"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    response = httpx.post(
        server.url + "/v2/models/iris-classifier/infer",
        json=infer_body("X", np.ones((1, 4))),
        headers={"traceparent": f"00-{1:032x}-{2:016x}-01"},
    )
    assert response.status_code == 200 and "traceparent" not in response.headers
    time.sleep(0.5)
    assert receiver.spans == []
