"""A plain FastAPI + uvicorn + onnxruntime service, written the way a data scientist would.

Pydantic request model, nested lists in and out, a sync endpoint (FastAPI runs it in its thread
pool). Run by the benchmark as: ``uvicorn benchmarks.peers.fastapi_app:app`` in the fastapi venv.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("BENCH_THREADS", "1"))
options.inter_op_num_threads = 1
session = ort.InferenceSession(os.environ["BENCH_MODEL_PATH"], options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name

app = FastAPI()


class PredictRequest(BaseModel):
    inputs: list


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    x = np.array(request.inputs, dtype=np.float32)
    outputs = session.run(None, {input_name: x})
    return {"outputs": outputs[0].tolist()}
