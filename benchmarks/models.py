"""The two benchmark models, exported from torch to ONNX once and served by every system.

* ``mlp``: a tiny MLP (16 -> 32 -> 4, softmax). The model call is a few microseconds, so what a
  server adds per request dominates: the latency-bound case.
* ``cnn``: a small convolutional network on 3x32x32 images (about 60 MFLOP per image), so the
  model call dominates: the compute-bound case where dynamic batching matters.

Both have a dynamic batch dimension. Each becomes a kernelshim kernel (through the same
scaffolding as ``shim init``) and the peers load the very same ``model.onnx`` file.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shim.contract.scaffold import scaffold_kernel, write_golden_sample

METADATA = {
    "created_at": "2026-11-01T09:00:00Z",
    "created_by": "benchmarks@example.com",
    "cost_center": "cc-bench-0001",
    "labels": {"data-classification": "public", "team": "benchmarks"},
    "training_dataset": "https://example.com/datasets/synthetic-benchmark",
    "resources": {"cpu": "2", "memory": "1Gi", "gpu": 0},
}


@dataclass(frozen=True)
class BenchModel:
    name: str  # also the kernel and served model name
    input_name: str
    output_name: str
    row_shape: tuple[int, ...]  # one request = one row of this shape
    max_batch_size: int
    max_queue_delay_us: int
    description: str

    def kernel_dir(self, root: Path) -> Path:
        return root / "kernels" / self.name

    def model_path(self, root: Path) -> Path:
        return self.kernel_dir(root) / "model.onnx"

    def sample(self, rows: int = 1, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((rows, *self.row_shape)).astype(np.float32)


MODELS = {
    "mlp": BenchModel(
        "mlp", "x", "probabilities", (16,), 32, 0, "Tiny MLP 16-32-4 with softmax (latency-bound)."
    ),
    "cnn": BenchModel(
        "cnn",
        "image",
        "logits",
        (3, 32, 32),
        32,
        2000,
        "Small CNN on 3x32x32 images, ~60 MFLOP/image (compute-bound).",
    ),
}


def _torch_module(name: str):
    import torch

    torch.manual_seed(0)
    if name == "mlp":
        return torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4), torch.nn.Softmax(dim=1)
        ).eval()
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    ).eval()


def export_onnx(model: BenchModel, path: Path) -> None:
    import torch

    module = _torch_module(model.name)
    example = torch.from_numpy(model.sample(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[model.input_name],
            output_names=[model.output_name],
            dynamic_axes={model.input_name: {0: "batch"}, model.output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def prepare(root: Path) -> dict[str, Path]:
    """Export both models and wrap each in a valid kernel; idempotent (reuses existing kernels)."""
    kernels: dict[str, Path] = {}
    for model in MODELS.values():
        kernel = model.kernel_dir(root)
        if not (kernel / "model_metadata.json").is_file():
            work = root / "onnx"
            work.mkdir(parents=True, exist_ok=True)
            onnx_file = work / f"{model.name}.onnx"
            export_onnx(model, onnx_file)
            scaffold_kernel(model.name, onnx_file, kernel, max_batch_size=model.max_batch_size)
            path = kernel / "model_metadata.json"
            metadata = json.loads(path.read_text())
            metadata.update(METADATA)
            metadata["description"] = model.description
            metadata["batching"] = {
                "max_batch_size": model.max_batch_size,
                "max_queue_delay_us": model.max_queue_delay_us,
            }
            path.write_text(json.dumps(metadata, indent=2) + "\n")
            write_golden_sample(kernel, metadata)
        kernels[model.name] = kernel
    return kernels
