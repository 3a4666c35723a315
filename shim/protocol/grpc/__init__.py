"""The Open Inference Protocol (KServe v2) gRPC service: vendored .proto files and generated stubs.

``proto/oip.proto`` is KServe's ``grpc_predict_v2.proto`` (vendored unchanged as
``proto/grpc_predict_v2.proto``) plus the Triton RPCs that ``tritonclient.grpc`` calls
(ModelStreamInfer, ModelConfig, ModelStatistics; ``proto/model_config.proto`` holds the subset
of Triton's ModelConfig they return). All of it is ``package inference``, service
``GRPCInferenceService``: the method paths are ``/inference.GRPCInferenceService/<Rpc>``.

Generated modules (do not edit; ``python -m shim.protocol.grpc.generate`` rewrites them):
``oip_pb2`` (messages), ``oip_pb2_grpc`` (servicer base class, stub, registration),
``model_config_pb2`` (ModelConfig, ModelInput, ModelOutput, DataType).

The messages live in a private descriptor pool, :data:`POOL`, not protobuf's default pool
(tritonclient.grpc registers the same names there; see ``_pool.py``).

Names are resolved lazily: importing this package needs neither grpcio nor valid stubs, so the
generator runs even when the stubs are missing or stale, and only ``oip_pb2_grpc`` and the
servicer names need grpcio (the ``grpc`` extra)::

    from shim.protocol.grpc import GRPCInferenceServiceServicer, add_GRPCInferenceServiceServicer_to_server
    from shim.protocol.grpc import ModelInferRequest, ModelInferResponse, ModelConfig, DataType
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import model_config_pb2, oip_pb2, oip_pb2_grpc
    from ._pool import POOL
    from .model_config_pb2 import (
        DataType,
        ModelConfig,
        ModelInput,
        ModelOutput,
    )
    from .oip_pb2 import (
        InferBatchStatistics,
        InferParameter,
        InferStatistics,
        InferTensorContents,
        ModelConfigRequest,
        ModelConfigResponse,
        ModelInferRequest,
        ModelInferResponse,
        ModelMetadataRequest,
        ModelMetadataResponse,
        ModelReadyRequest,
        ModelReadyResponse,
        ModelStatistics,
        ModelStatisticsRequest,
        ModelStatisticsResponse,
        ModelStreamInferResponse,
        RepositoryModelLoadRequest,
        RepositoryModelLoadResponse,
        RepositoryModelUnloadRequest,
        RepositoryModelUnloadResponse,
        ServerLiveRequest,
        ServerLiveResponse,
        ServerMetadataRequest,
        ServerMetadataResponse,
        ServerReadyRequest,
        ServerReadyResponse,
        StatisticDuration,
    )
    from .oip_pb2_grpc import (
        GRPCInferenceServiceServicer,
        GRPCInferenceServiceStub,
        add_GRPCInferenceServiceServicer_to_server,
    )

#: Fully-qualified name of the service (gRPC method paths are ``/<SERVICE_NAME>/<Rpc>``).
SERVICE_NAME = "inference.GRPCInferenceService"

_MODULES = ("oip_pb2", "oip_pb2_grpc", "model_config_pb2")
# Where exported names are looked up, in order: messages resolve before oip_pb2_grpc is imported,
# so they do not need grpcio.
_SOURCES = ("_pool", "model_config_pb2", "oip_pb2", "oip_pb2_grpc")

__all__ = [
    "POOL",
    "SERVICE_NAME",
    "DataType",
    "GRPCInferenceServiceServicer",
    "GRPCInferenceServiceStub",
    "InferBatchStatistics",
    "InferParameter",
    "InferStatistics",
    "InferTensorContents",
    "ModelConfig",
    "ModelConfigRequest",
    "ModelConfigResponse",
    "ModelInferRequest",
    "ModelInferResponse",
    "ModelInput",
    "ModelMetadataRequest",
    "ModelMetadataResponse",
    "ModelOutput",
    "ModelReadyRequest",
    "ModelReadyResponse",
    "ModelStatistics",
    "ModelStatisticsRequest",
    "ModelStatisticsResponse",
    "ModelStreamInferResponse",
    "RepositoryModelLoadRequest",
    "RepositoryModelLoadResponse",
    "RepositoryModelUnloadRequest",
    "RepositoryModelUnloadResponse",
    "ServerLiveRequest",
    "ServerLiveResponse",
    "ServerMetadataRequest",
    "ServerMetadataResponse",
    "ServerReadyRequest",
    "ServerReadyResponse",
    "StatisticDuration",
    "add_GRPCInferenceServiceServicer_to_server",
    "model_config_pb2",
    "oip_pb2",
    "oip_pb2_grpc",
    "service_descriptor",
]


def service_descriptor() -> Any:
    """The ``ServiceDescriptor`` of ``inference.GRPCInferenceService`` (from :data:`POOL`)."""
    from . import oip_pb2

    return oip_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for source in _SOURCES:
        try:
            module = importlib.import_module(f"{__name__}.{source}")
        except ModuleNotFoundError as exc:
            if exc.name == "grpc":
                raise ModuleNotFoundError(
                    f"{__name__}.{name} needs grpcio: pip install 'kernelshim[grpc]'", name="grpc"
                ) from exc
            raise
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
