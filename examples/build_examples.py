"""Build the example kernels in examples/kernels/ from tiny real models.

Run: python examples/build_examples.py [--out examples/kernels]
Each kernel is made with the same scaffolding code as `shim init`, then the fields only a person
can supply are filled in. Deterministic: seeds are fixed, so re-running changes nothing but
created_at (kept stable here on purpose).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shim.contract.scaffold import scaffold_kernel, write_golden_sample

CREATED_AT = "2026-11-01T09:00:00Z"
COMMON = {
    "created_at": CREATED_AT,
    "created_by": "data-science@example.com",
    "cost_center": "cc-ml-4711",
    "labels": {"data-classification": "internal", "team": "ds-core"},
}


def _finish(kernel: Path, **fields: object) -> None:
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(COMMON)
    metadata.update(fields)
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    write_golden_sample(kernel, metadata)


IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled iris data split 120/30: every fifth row (10 per class) is held back.

    The model is trained and profiled on the 120 rows; the 30 held-back rows are the test split
    (``monitoring.expected.accuracy``) and what examples/drift_demo.py replays.
    """
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    held = np.arange(len(x)) % 5 == 4
    return x[~held], y[~held], x[held], y[held]


def build_iris(out: Path, work: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from shim.contract.profiling import build_profile

    x, y, x_test, y_test = iris_split()
    classifier = LogisticRegression(max_iter=500, random_state=0).fit(x, y)
    accuracy = float((classifier.predict(x_test) == y_test).mean())
    onx = to_onnx(classifier, x[:1], options={id(classifier): {"zipmap": False}}, target_opset=17)
    model = work / "iris.onnx"
    model.write_bytes(onx.SerializeToString())
    kernel = scaffold_kernel("iris-classifier", model, out / "iris-classifier", max_batch_size=64)
    metadata_path = kernel / "model_metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["inputs"][0]["features"] = IRIS_FEATURES
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    _finish(
        kernel,
        description="Logistic regression on the four iris measurements (cm); "
        "returns the class and its probabilities.",
        training_dataset="https://archive.ics.uci.edu/dataset/53/iris",
        tolerance={"atol": 1e-5, "rtol": 1e-4},
        resources={"cpu": "1", "memory": "512Mi", "gpu": 0},
        batching={"max_batch_size": 64, "max_queue_delay_us": 200},
        monitoring={
            "profile": "profile.json",
            "window": {"rows": 30, "seconds": 60},
            "level": 0.01,
            "correction": "benjamini-hochberg",
            "windows_in_a_row": 2,
            "expected": {"accuracy": round(accuracy, 4), "output": "label", "tolerance": 0.05, "window": 200},
        },
    )
    data = work / "iris-train.csv"
    with data.open("w", encoding="utf-8") as handle:
        handle.write(",".join(IRIS_FEATURES) + "\n")
        for row in x:
            handle.write(",".join(repr(float(v)) for v in row) + "\n")
    build_profile(kernel, [data], now=datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc))


def build_torchscript_mlp(out: Path, work: Path) -> None:
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3), torch.nn.Softmax(dim=1)
    ).eval()
    scripted = torch.jit.script(mlp)
    model = work / "mlp.pt"
    torch.jit.save(scripted, str(model))
    kernel = scaffold_kernel(
        "torchscript-mlp", model, out / "torchscript-mlp",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 8]}], max_batch_size=32,
    )
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    metadata["outputs"][0]["name"] = "probabilities"
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    _finish(
        kernel,
        description="Two-layer MLP scoring 8 standardized sensor features into 3 classes.",
        training_dataset="s3://ml-datasets/sensors/v7/",
        resources={"cpu": "1", "memory": "1Gi", "gpu": 0},
        batching={"max_batch_size": 32, "max_queue_delay_us": 500},
    )
    (kernel / "requirements.txt").write_text("# lightweight, exactly pinned extras only\nsix==1.16.0\n")


def build_torch_export_digits(out: Path, work: Path) -> None:
    """A small CNN over 8x8 grey images exported with torch.export and a dynamic batch (1-64)."""
    import torch

    class DigitsCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            )
            self.head = torch.nn.Linear(16, 10)

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            logits = self.head(self.features(image).flatten(1))
            return {"probabilities": torch.softmax(logits, dim=1), "label": logits.argmax(dim=1)}

    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: the same float sums, so the same weights, on any machine
    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    labels = torch.tensor(y)
    network = DigitsCNN()
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    for _epoch in range(15):
        for start in range(0, len(images), 128):
            optimizer.zero_grad()
            rows = slice(start, start + 128)
            log_probabilities = network(images[rows])["probabilities"].clamp_min(1e-7).log()
            loss = torch.nn.functional.nll_loss(log_probabilities, labels[rows])
            loss.backward()
            optimizer.step()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(network.eval(), (images[:2],), dynamic_shapes={"image": {0: batch}})
    for node in program.graph.nodes:  # build-machine paths would make the archive irreproducible
        node.meta.pop("stack_trace", None)
    model = work / "model.pt2"  # torch names the archive's top folder after the file
    torch.export.save(program, str(model))
    kernel = scaffold_kernel("torch-export-digits", model, out / "torch-export-digits", max_batch_size=32)
    _finish(
        kernel,
        description="Small CNN classifying 8x8 grey digit images (pixels scaled to 0-1) into 0-9; "
        "exported with torch.export, dynamic batch 1-64.",
        training_dataset="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        resources={"cpu": "1", "memory": "1Gi", "gpu": 0},
        batching={"max_batch_size": 32, "max_queue_delay_us": 500},
    )


def build_two_input_ranker(out: Path, work: Path) -> None:
    rng = np.random.default_rng(7)
    table = rng.standard_normal((10, 4)).astype(np.float32)
    weights = rng.standard_normal((4, 2)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["category_embedding", "category"], ["embedded"], axis=0),
            helper.make_node("Add", ["features", "embedded"], ["combined"]),
            helper.make_node("MatMul", ["combined", "weights"], ["projected"]),
            helper.make_node("Add", ["projected", "bias"], ["scores"]),
        ],
        "two_input_ranker",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("category", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(table, "category_embedding"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model_proto, full_check=True)
    model = work / "ranker.onnx"
    onnx.save(model_proto, str(model))
    kernel = scaffold_kernel("two-input-ranker", model, out / "two-input-ranker", max_batch_size=128)
    _finish(
        kernel,
        description="Scores items from 4 dense features plus a category id (0-9) looked up in an embedding.",
        training_dataset="gs://ml-datasets/ranking/2026-10/",
        resources={"cpu": "2", "memory": "1Gi", "gpu": 0},
        batching={"max_batch_size": 128, "max_queue_delay_us": 200},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "kernels")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for builder, name in ((build_iris, "iris-classifier"), (build_torchscript_mlp, "torchscript-mlp"),
                              (build_two_input_ranker, "two-input-ranker"),
                              (build_torch_export_digits, "torch-export-digits")):
            shutil.rmtree(args.out / name, ignore_errors=True)
            builder(args.out, Path(tmp))
            print(f"built {args.out / name}")


if __name__ == "__main__":
    main()
