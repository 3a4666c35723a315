"""The vendored gRPC definitions (shim/protocol/grpc/proto) and their generated stubs.

* the committed stubs are exactly what ``python -m shim.protocol.grpc.generate`` writes now, and
  writing them twice gives the same bytes;
* proto/grpc_predict_v2.proto is KServe's text unchanged, and oip.proto contains every message,
  field and RPC of it unchanged;
* every RPC that tritonclient.grpc.InferenceServerClient calls for live/ready/model ready/server
  metadata/model metadata/model config/statistics/infer exists in our service, with the same
  field names, numbers and types as tritonclient's own generated descriptors, and a real
  tritonclient talks to a server built on our stubs;
* the stubs coexist with tritonclient.grpc in one process, and pyproject's bounds fit the
  generated code.

Off CI a test whose tool (grpc_tools, grpcio, tritonclient) is not installed is skipped, saying
so; on CI (CI=true) it fails instead.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import os
import re
import subprocess
import sys
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from shim.protocol.grpc import generate as gen

ON_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = gen.PROTO_DIR

# sha256 of KServe's grpc_predict_v2.proto as upstream wrote it (kserve/kserve commit
# d349e38f823be9c781619b2ed15765f181176a8b); the vendored copy only adds one comment block.
KSERVE_UPSTREAM_SHA256 = "2661303b32e62dc473486d5839d150c869db9032182fbb71517ae09e92b892d6"
SERVICE = "inference.GRPCInferenceService"

# InferenceServerClient methods kernelshim must serve over gRPC -> the RPCs they call today.
CLIENT_METHODS = {
    "is_server_live": {"ServerLive"},
    "is_server_ready": {"ServerReady"},
    "is_model_ready": {"ModelReady"},
    "get_server_metadata": {"ServerMetadata"},
    "get_model_metadata": {"ModelMetadata"},
    "get_model_config": {"ModelConfig"},
    "get_inference_statistics": {"ModelStatistics"},
    "infer": {"ModelInfer"},
}
# What oip.proto adds to KServe's service and messages (all of it Triton's, checked below).
TRITON_RPCS = {"ModelStreamInfer", "ModelConfig", "ModelStatistics"}
TRITON_EXTRA_FIELDS = {"inference.InferParameter": {"double_param", "uint64_param"}}


def _require(module: str, why: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if ON_CI:
            pytest.fail(f"{module} must be installed on CI ({why}): {exc}")
        pytest.skip(f"{module} is not installed ({why}); pip install -e '.[dev]'")


def _stubs() -> ModuleType:
    _require("grpc", "the generated *_pb2_grpc stubs import grpcio")
    return importlib.import_module("shim.protocol.grpc")


def _tritonclient() -> tuple[ModuleType, ModuleType]:
    _require("grpc", "tritonclient.grpc needs grpcio")
    client = _require("tritonclient.grpc", "the reference client")
    return client, importlib.import_module("tritonclient.grpc.service_pb2")


# --- generation ---------------------------------------------------------------------------------


def _toolchain_of(text: str) -> str:
    match = re.search(r"^# Toolchain: (.*?)\.?$", text, flags=re.MULTILINE)
    return match.group(1) if match else "unknown"


def test_committed_stubs_are_regenerated_byte_for_byte(tmp_path: Path) -> None:
    _require("grpc_tools", "regenerates the stubs")
    first, second = tmp_path / "a", tmp_path / "b"
    gen.generate(first)
    gen.generate(second)
    names = gen.stub_names()
    assert sorted(p.name for p in first.iterdir()) == sorted(names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), f"{name} is not reproducible"

    committed = {p.name for p in gen.PACKAGE_DIR.iterdir() if "_pb2" in p.name}
    assert committed == set(names), "generated files in shim/protocol/grpc that the generator does not write"
    problems = []
    for name in names:
        fresh = (first / name).read_text(encoding="utf-8")
        old = (gen.PACKAGE_DIR / name).read_text(encoding="utf-8")
        if fresh != old:
            diff = "".join(
                list(difflib.unified_diff(old.splitlines(True), fresh.splitlines(True), name, "fresh"))[:40]
            )
            problems.append(
                f"{name}: committed with [{_toolchain_of(old)}], installed [{_toolchain_of(fresh)}]\n{diff}"
            )
    assert not problems, (
        "committed gRPC stubs are stale; run `python -m shim.protocol.grpc.generate` (with the "
        "grpcio-tools version the dev extra pins)\n" + "\n".join(problems)
    )


def test_generated_stubs_import_package_relative() -> None:
    for name in gen.stub_names():
        text = (gen.PACKAGE_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"^import \w+_pb2\b", text, flags=re.MULTILINE), name
        assert "_descriptor_pool.Default()" not in text, name
        assert str(REPO) not in text, f"{name} contains a path of this checkout"


# --- the vendored KServe text and oip.proto -----------------------------------------------------


def test_vendored_kserve_proto_is_upstream_text() -> None:
    text = (PROTO_DIR / "grpc_predict_v2.proto").read_text(encoding="utf-8")
    block = re.search(r"// -{20,}\n// Vendored by kernelshim.*?\n// -{20,}\n\n", text, flags=re.DOTALL)
    assert block, "the provenance comment block is missing"
    upstream = text[: block.start()] + text[block.end() :]
    assert hashlib.sha256(upstream.encode("utf-8")).hexdigest() == KSERVE_UPSTREAM_SHA256
    assert "Apache License, Version 2.0" in text[: block.start()]


def _compile_reference(name: str, tmp_path: Path) -> Any:
    """Compile proto/<name> with protoc into a fresh pool; return its FileDescriptor."""
    _require("grpc_tools", "compiles the reference .proto")
    from google.protobuf import descriptor_pb2, descriptor_pool

    out = tmp_path / "reference.pb"
    run = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--descriptor_set_out={out}", name],
        cwd=PROTO_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool.FindFileByName(name)


def _ref(field: Any) -> str | None:
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    return None


def _signature(field: Any) -> tuple[Any, ...]:
    """What the wire format and a decoder depend on (plus the name, which JSON uses)."""
    oneof = field.containing_oneof.name if field.containing_oneof is not None else None
    return (field.name, field.number, field.type, field.is_repeated, _ref(field), oneof)


def _nested(message: Any) -> list[Any]:
    out = []
    for nested in message.nested_types:
        out.append(nested)
        out.extend(_nested(nested))
    return out


def test_oip_contains_kserve_service_unchanged(tmp_path: Path) -> None:
    grpc_stubs = _stubs()
    ours_file = grpc_stubs.oip_pb2.DESCRIPTOR
    kserve = _compile_reference("grpc_predict_v2.proto", tmp_path)
    assert kserve.package == ours_file.package == "inference"

    kserve_messages = [m for top in kserve.message_types_by_name.values() for m in (top, *_nested(top))]
    assert len(kserve_messages) > 20
    for message in kserve_messages:
        ours = grpc_stubs.POOL.FindMessageTypeByName(message.full_name)
        theirs_fields = {f.name: _signature(f) for f in message.fields}
        ours_fields = {f.name: _signature(f) for f in ours.fields}
        for name, sig in theirs_fields.items():
            assert ours_fields.get(name) == sig, f"{message.full_name}.{name} differs from KServe's"
        extra = set(ours_fields) - set(theirs_fields)
        assert extra == TRITON_EXTRA_FIELDS.get(message.full_name, set()), message.full_name
        assert ours.GetOptions().map_entry == message.GetOptions().map_entry

    kserve_service = kserve.services_by_name["GRPCInferenceService"]
    ours_service = grpc_stubs.service_descriptor()
    assert kserve_service.full_name == ours_service.full_name == SERVICE
    for method in kserve_service.methods:
        mine = ours_service.methods_by_name[method.name]
        assert (mine.input_type.full_name, mine.output_type.full_name) == (
            method.input_type.full_name,
            method.output_type.full_name,
        )
        assert (mine.client_streaming, mine.server_streaming) == (
            method.client_streaming,
            method.server_streaming,
        )
    assert {m.name for m in ours_service.methods} - {m.name for m in kserve_service.methods} == TRITON_RPCS


# --- tritonclient compatibility -----------------------------------------------------------------


def _rpcs_called_by(client_cls: type, method: str) -> set[str]:
    source = inspect.getsource(getattr(client_cls, method))
    return set(re.findall(r"self\._client_stub\.(\w+)\(", source))


def test_tritonclient_calls_the_rpcs_we_expect() -> None:
    client, _ = _tritonclient()
    for method, expected in CLIENT_METHODS.items():
        assert _rpcs_called_by(client.InferenceServerClient, method) == expected, (
            f"tritonclient's InferenceServerClient.{method} now calls other RPCs: update CLIENT_METHODS "
            "and, if needed, proto/oip.proto"
        )


def _assert_wire_compatible(ours: Any, theirs: Any, seen: set[str]) -> None:
    """Every field we define (recursively) is Triton's: same name, number, type, label, type name."""
    if ours.full_name in seen:
        return
    seen.add(ours.full_name)
    assert ours.full_name == theirs.full_name
    assert ours.GetOptions().map_entry == theirs.GetOptions().map_entry, ours.full_name
    for field in ours.fields:
        other = theirs.fields_by_number.get(field.number)
        assert other is not None, f"{ours.full_name}: field {field.name} = {field.number} is not Triton's"
        assert _signature(field) == _signature(other), f"{ours.full_name}.{field.name} differs from Triton's"
        if field.message_type is not None:
            _assert_wire_compatible(field.message_type, other.message_type, seen)
        if field.enum_type is not None:
            triton_values = {v.name: v.number for v in other.enum_type.values}
            for value in field.enum_type.values:
                where = f"{field.enum_type.full_name}.{value.name}"
                assert triton_values.get(value.name) == value.number, where


@pytest.mark.parametrize("rpc", sorted(set().union(*CLIENT_METHODS.values()) | TRITON_RPCS))
def test_rpc_is_wire_compatible_with_tritonclient(rpc: str) -> None:
    grpc_stubs = _stubs()
    _, service_pb2 = _tritonclient()
    ours = grpc_stubs.service_descriptor().methods_by_name.get(rpc)
    assert ours is not None, f"{SERVICE}/{rpc} is missing from oip.proto"
    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name[rpc]
    assert ours.containing_service.full_name == theirs.containing_service.full_name == SERVICE
    streaming = (ours.client_streaming, ours.server_streaming)
    assert streaming == (theirs.client_streaming, theirs.server_streaming)
    seen: set[str] = set()
    _assert_wire_compatible(ours.input_type, theirs.input_type, seen)
    _assert_wire_compatible(ours.output_type, theirs.output_type, seen)


def _servicer_class(grpc_stubs: ModuleType) -> type:
    g = grpc_stubs

    class Servicer(g.GRPCInferenceServiceServicer):
        def ServerLive(self, request, context):
            return g.ServerLiveResponse(live=True)

        def ServerReady(self, request, context):
            return g.ServerReadyResponse(ready=True)

        def ModelReady(self, request, context):
            return g.ModelReadyResponse(ready=request.name == "m")

        def ServerMetadata(self, request, context):
            return g.ServerMetadataResponse(name="kernelshim", version="0", extensions=["statistics"])

        def ModelMetadata(self, request, context):
            tensor = g.ModelMetadataResponse.TensorMetadata
            return g.ModelMetadataResponse(
                name=request.name,
                versions=["1"],
                platform="onnxruntime_onnx",
                inputs=[tensor(name="x", datatype="FP32", shape=[-1, 2])],
                outputs=[tensor(name="y", datatype="FP32", shape=[-1, 2])],
            )

        def ModelConfig(self, request, context):
            return g.ModelConfigResponse(
                config=g.ModelConfig(
                    name=request.name,
                    platform="onnxruntime_onnx",
                    backend="onnxruntime",
                    max_batch_size=8,
                    input=[g.ModelInput(name="x", data_type=g.DataType.TYPE_FP32, dims=[2])],
                    output=[g.ModelOutput(name="y", data_type=g.DataType.TYPE_FP32, dims=[2])],
                )
            )

        def ModelStatistics(self, request, context):
            duration = g.StatisticDuration
            return g.ModelStatisticsResponse(
                model_stats=[
                    g.ModelStatistics(
                        name="m",
                        version="1",
                        last_inference=1_700_000_000_000,
                        inference_count=3,
                        execution_count=2,
                        inference_stats=g.InferStatistics(
                            success=duration(count=3, ns=3000),
                            fail=duration(count=1, ns=10),
                            queue=duration(count=3, ns=300),
                            compute_infer=duration(count=2, ns=2000),
                        ),
                        batch_stats=[
                            g.InferBatchStatistics(batch_size=2, compute_infer=duration(count=1, ns=1500))
                        ],
                    )
                ]
            )

        def ModelInfer(self, request, context):
            tensor = request.inputs[0]
            data = np.frombuffer(request.raw_input_contents[0], dtype="<f4").reshape(tensor.shape) * 2
            scale = request.parameters["scale"]
            assert scale.WhichOneof("parameter_choice") == "double_param", scale
            return g.ModelInferResponse(
                model_name=request.model_name,
                model_version="1",
                id=request.id,
                outputs=[g.ModelInferResponse.InferOutputTensor(name="y", datatype="FP32", shape=data.shape)],
                raw_output_contents=[data.astype("<f4").tobytes()],
            )

    return Servicer


def test_tritonclient_talks_to_a_server_built_on_our_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    grpc_stubs = _stubs()
    triton, _ = _tritonclient()
    import grpc

    for var in ("http_proxy", "https_proxy", "grpc_proxy", "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    grpc_stubs.add_GRPCInferenceServiceServicer_to_server(_servicer_class(grpc_stubs)(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        assert client.is_server_live(client_timeout=10)
        assert client.is_server_ready(client_timeout=10)
        assert client.is_model_ready("m", client_timeout=10)
        assert not client.is_model_ready("other", client_timeout=10)
        assert client.get_server_metadata(as_json=True)["extensions"] == ["statistics"]
        metadata = client.get_model_metadata("m", as_json=True)
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "2"]}]

        config = client.get_model_config("m", as_json=True)["config"]
        assert config["max_batch_size"] == 8
        assert config["backend"] == "onnxruntime"
        assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": ["2"]}]
        assert config["output"][0]["data_type"] == "TYPE_FP32"

        stats = client.get_inference_statistics("m").model_stats[0]
        assert (stats.inference_count, stats.execution_count) == (3, 2)
        assert stats.inference_stats.success.ns == 3000
        assert stats.inference_stats.compute_infer.count == 2
        assert stats.batch_stats[0].compute_infer.ns == 1500

        data = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
        inp = triton.InferInput("x", list(data.shape), "FP32")
        inp.set_data_from_numpy(data)
        result = client.infer(
            "m",
            [inp],
            outputs=[triton.InferRequestedOutput("y")],
            request_id="r1",
            parameters={"scale": 2.5},
            client_timeout=10,
        )
        np.testing.assert_array_equal(result.as_numpy("y"), data * 2)
        assert result.get_response().id == "r1"
    finally:
        client.close()
        server.stop(None)


# --- the package --------------------------------------------------------------------------------


def test_package_exports_every_message_from_the_private_pool() -> None:
    grpc_stubs = _stubs()
    from google.protobuf import descriptor_pool

    for module in (grpc_stubs.oip_pb2, grpc_stubs.model_config_pb2):
        names = [*module.DESCRIPTOR.message_types_by_name, *module.DESCRIPTOR.enum_types_by_name]
        for name in names:
            assert getattr(grpc_stubs, name) is getattr(module, name), name
            assert name in grpc_stubs.__all__
    for name in grpc_stubs.__all__:
        assert getattr(grpc_stubs, name) is not None
    assert grpc_stubs.ModelInferRequest.DESCRIPTOR.file.pool is grpc_stubs.POOL
    assert grpc_stubs.POOL is not descriptor_pool.Default()
    assert grpc_stubs.ModelInferRequest.__module__ == "shim.protocol.grpc.oip_pb2"
    assert grpc_stubs.service_descriptor().full_name == grpc_stubs.SERVICE_NAME == SERVICE


@pytest.mark.parametrize("first", ["ours", "tritonclient"])
def test_stubs_and_tritonclient_import_in_either_order(first: str) -> None:
    _stubs()
    _tritonclient()
    ours = "import shim.protocol.grpc as g; g.oip_pb2, g.oip_pb2_grpc, g.model_config_pb2"
    theirs = "import tritonclient.grpc, tritonclient.grpc.service_pb2"
    code = f"{ours}\n{theirs}" if first == "ours" else f"{theirs}\n{ours}"
    code += "\nprint(g.ModelInferRequest(model_name='m').SerializeToString().hex())"
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0a016d"


def test_pyproject_bounds_fit_the_generated_code() -> None:
    tomllib = _require("tomllib", "reads pyproject.toml (Python 3.11+)")
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    grpc_extra = {r.name: r for r in map(Requirement, extras["grpc"])}
    dev = {r.name: r for r in map(Requirement, extras["dev"])}

    pb2 = (gen.PACKAGE_DIR / "oip_pb2.py").read_text(encoding="utf-8")
    gencode = Version(re.search(r"^# Protobuf Python Version: (\S+)$", pb2, flags=re.MULTILINE).group(1))
    grpc_stub = (gen.PACKAGE_DIR / "oip_pb2_grpc.py").read_text(encoding="utf-8")
    grpc_generated = re.search(r"^GRPC_GENERATED_VERSION = '(\S+)'$", grpc_stub, flags=re.MULTILINE)
    grpc_generated = Version(grpc_generated.group(1))
    tools = re.search(r"^# Toolchain: grpcio-tools (\S+) ", pb2, flags=re.MULTILINE).group(1)

    # The generated code refuses an older runtime than the one it was generated for, so the
    # extra's lower bounds must not admit one.
    def lowest(requirement: Requirement) -> Version:
        bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        assert bounds, f"{requirement} has no lower bound"
        return max(bounds)

    assert lowest(grpc_extra["protobuf"]) >= gencode
    assert lowest(grpc_extra["grpcio"]) >= grpc_generated
    # Regeneration is byte-for-byte only with the grpcio-tools the stubs were made with.
    assert str(dev["grpcio-tools"].specifier) == f"=={tools}"
    assert lowest(grpc_extra["grpcio-health-checking"]) >= grpc_generated  # the server imports grpc_health
