"""Drive ``shim serve`` with KServe's own ``InferenceGRPCClient``, unmodified (run in KServe's venv).

kserve pins protobuf and gRPC tooling that conflict with the project's venv, so this script runs
in the venv ``.ci/install-kserve-client.sh`` makes, as a subprocess of
``tests/server/test_kserve_client.py``. It imports nothing from kernelshim: only kserve, grpc and
numpy. It reads one JSON document on stdin ({"address", "model", "version", "inputs": [{name,
datatype, shape, data}]}) and prints one JSON document of what the server answered.
"""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}


def _outputs(response) -> dict:
    return {o.name: {"datatype": o.datatype, "shape": list(o.shape), "data": o.as_numpy().ravel().tolist()}
            for o in response.outputs}


def _tensor(t) -> dict:
    return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}


async def main(job: dict) -> dict:
    model, version = job["model"], job["version"]
    answer: dict = {}
    async with InferenceGRPCClient(job["address"], timeout=30, retries=0) as client:
        answer["live"] = await client.is_server_live()
        answer["ready"] = await client.is_server_ready()
        answer["model_ready"] = await client.is_model_ready(model)
        try:
            await client.is_model_ready("no-such-model")
            answer["unknown_model"] = "OK"
        except grpc.RpcError as exc:
            answer["unknown_model"] = exc.code().name
        # the client has no metadata call of its own: KServe's generated stub for the same service
        async with grpc.aio.insecure_channel(job["address"]) as channel:
            stub = GRPCInferenceServiceStub(channel)
            server = await stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30)
            metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version),
                                                timeout=30)
        answer["server_metadata"] = {"name": server.name, "extensions": list(server.extensions)}
        answer["model_metadata"] = {
            "name": metadata.name, "versions": list(metadata.versions), "platform": metadata.platform,
            "inputs": [_tensor(t) for t in metadata.inputs],
            "outputs": [_tensor(t) for t in metadata.outputs],
        }
        for mode in ("typed", "raw"):
            inputs = []
            for entry in job["inputs"]:
                array = np.array(entry["data"], dtype=NUMPY[entry["datatype"]]).reshape(entry["shape"])
                tensor = InferInput(entry["name"], list(array.shape), entry["datatype"])
                tensor.set_data_from_numpy(array, binary_data=mode == "raw")
                inputs.append(tensor)
            request = InferRequest(model_name=model, infer_inputs=inputs, request_id=f"kserve-{mode}")
            grpc_request = request.to_grpc()  # what the client puts on the wire, to prove the encoding
            typed = sum(1 for t in grpc_request.inputs if t.HasField("contents"))
            answer[f"{mode}_wire"] = {"raw_input_contents": len(grpc_request.raw_input_contents),
                                      "typed_inputs": typed}
            response = await client.infer(request)
            answer[mode] = {"id": response.id, "model_name": response.model_name,
                            "outputs": _outputs(response)}
    return answer


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
