"""The OpenAPI 3 description of the served v2 API, specialised to the kernel being served.

Generated from the kernel's contract, so the document names the real model, version, tensor
names and datatypes: clients and API gateways can validate against it, and the request fuzzing
tests (schemathesis) use it to aim generated requests at every endpoint. Served at
``GET /v2/openapi.json`` behind the same authentication as the model metadata it reveals.
"""

from __future__ import annotations

from typing import Any

from shim import __version__
from shim.spec.kernel import Kernel

OPENAPI_PATH = "/v2/openapi.json"

_ERROR = {"$ref": "#/components/schemas/Error"}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {"application/json": {"schema": schema}}
    return body


def _errors(*statuses: int) -> dict[str, Any]:
    titles = {
        400: "the request breaks the protocol or the contract",
        401: "missing or invalid credentials (only when authentication is on)",
        404: "unknown model, version or endpoint",
        405: "method not allowed",
        413: "request body or tensor too large",
        415: "unsupported Content-Encoding",
        429: "rate limit exceeded; see Retry-After",
        500: "the model raised while running this request",
        503: "the model is not ready, the queue is full, or it ran out of memory; see Retry-After",
    }
    return {str(s): _response(titles[s], _ERROR) for s in statuses}


def _tensor_schema(kernel: Kernel) -> dict[str, Any]:
    names = [t.name for t in kernel.inputs]
    datatypes = sorted({t.datatype.name for t in kernel.inputs})
    return {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string", "enum": names},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 8},
            "datatype": {"type": "string", "enum": datatypes},
            "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
            "data": {"type": "array", "items": {}},
        },
    }


def _infer_request(kernel: Kernel) -> dict[str, Any]:
    output_names = [t.name for t in kernel.outputs]
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/RequestInput"},
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "enum": output_names},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    }


def _model_paths(kernel: Kernel, prefix: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    secured = _errors(401, 404, 405, 429)
    return {
        prefix: {
            "get": {
                "operationId": f"modelMetadata{'Version' if len(parameters) > 1 else ''}",
                "summary": "model metadata: name, versions, platform, input and output tensors",
                "parameters": parameters,
                "responses": {
                    "200": _response("model metadata", {"$ref": "#/components/schemas/ModelMetadata"}),
                    **secured,
                },
            }
        },
        f"{prefix}/ready": {
            "get": {
                "operationId": f"modelReady{'Version' if len(parameters) > 1 else ''}",
                "summary": "model readiness",
                "parameters": parameters,
                "responses": {
                    "200": _response("ready", {"type": "object"}),
                    "503": _response("not ready", {"type": "object"}),
                    **secured,
                },
            }
        },
        f"{prefix}/infer": {
            "post": {
                "operationId": f"modelInfer{'Version' if len(parameters) > 1 else ''}",
                "summary": "run an inference (JSON tensors, or Triton's binary tensor extension)",
                "parameters": [
                    *parameters,
                    {
                        "name": "Inference-Header-Content-Length",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "length of the JSON header when binary tensor data follows it",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
                    },
                },
                "responses": {
                    "200": _response("inference result", {"$ref": "#/components/schemas/InferenceResponse"}),
                    **_errors(400, 401, 404, 405, 413, 415, 429, 500, 503),
                },
            }
        },
        f"{prefix}/config": {
            "get": {
                "operationId": f"modelConfig{'Version' if len(parameters) > 1 else ''}",
                "summary": "Triton-style model configuration",
                "parameters": parameters,
                "responses": {"200": _response("configuration", {"type": "object"}), **secured},
            }
        },
        f"{prefix}/monitoring": {
            "get": {
                "operationId": f"modelMonitoring{'Version' if len(parameters) > 1 else ''}",
                "summary": "the latest monitoring window: drift per feature and output, alerts, live "
                "accuracy (404 when the contract has no monitoring block)",
                "parameters": parameters,
                "responses": {"200": _response("monitoring report", {"type": "object"}), **secured},
            }
        },
        f"{prefix}/feedback": {
            "post": {
                "operationId": f"modelFeedback{'Version' if len(parameters) > 1 else ''}",
                "summary": "the true label (or value) of a served request, joined by its id for live "
                "accuracy",
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["id", "truth"], "additionalProperties": False,
                        "properties": {"id": {"type": "string", "maxLength": 256},
                                       "truth": {"description": "label or value; a list with one per row"}},
                    }}},
                },
                "responses": {"200": _response("joined", {"type": "object"}),
                              **_errors(400, 401, 404, 405, 413, 429)},
            }
        },
        f"{prefix}/stats": {
            "get": {
                "operationId": f"modelStats{'Version' if len(parameters) > 1 else ''}",
                "summary": "model statistics",
                "parameters": parameters,
                "responses": {"200": _response("statistics", {"type": "object"}), **secured},
            }
        },
    }


def build_openapi(kernel: Kernel, auth: bool) -> dict[str, Any]:
    """The document for one kernel; ``auth`` says whether credentials are required."""
    name_param = {
        "name": "model_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [kernel.name]},
    }
    version_param = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [kernel.version]},
    }
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": {
                "operationId": "serverLive",
                "summary": "liveness probe (never authenticated)",
                "security": [],
                "responses": {"200": _response("live", {"type": "object"})},
            }
        },
        "/v2/health/ready": {
            "get": {
                "operationId": "serverReady",
                "summary": "readiness probe, with the reason when not ready",
                "security": [],
                "responses": {
                    "200": _response("ready", {"type": "object"}),
                    "503": _response("not ready", {"type": "object"}),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "readiness probe alias",
                "security": [],
                "responses": {
                    "200": _response("ready", {"type": "object"}),
                    "503": _response("not ready", {"type": "object"}),
                },
            }
        },
        "/v2": {
            "get": {
                "operationId": "serverMetadata",
                "summary": "server metadata",
                "responses": {
                    "200": _response("server metadata", {"type": "object"}),
                    **_errors(401, 405, 429),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "this document",
                "responses": {
                    "200": _response("OpenAPI document", {"type": "object"}),
                    **_errors(401, 405, 429),
                },
            }
        },
        **_model_paths(kernel, "/v2/models/{model_name}", [name_param]),
        **_model_paths(
            kernel, "/v2/models/{model_name}/versions/{model_version}", [name_param, version_param]
        ),
    }
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"kernelshim: {kernel.name}",
            "version": __version__,
            "description": "Open Inference Protocol (KServe v2) REST API for one kernel.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "RequestInput": _tensor_schema(kernel),
                "InferenceRequest": _infer_request(kernel),
                "InferenceResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array"},
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "required": ["name", "versions", "platform", "inputs", "outputs"],
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array"},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array"},
                        "outputs": {"type": "array"},
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
    if auth:
        document["security"] = [{"bearer": []}, {"apiKey": []}]
    return document
