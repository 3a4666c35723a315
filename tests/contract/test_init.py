"""``shim init``: a kernel scaffolded from a real model validates except for the FILL_ME fields,
and validates cleanly once a person fills them in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLE_KERNELS, edit_json, read_json
from kernel_fixtures import string_onnx, tiny_onnx

PERSON_FIELDS = {
    "description": "Relu of three features.",
    "created_by": "data-science@example.com",
    "training_dataset": "s3://datasets/tiny/v1/",
    "cost_center": "cc-ml-4711",
}


def fill_in(kernel: Path) -> None:
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))


def placeholder_paths(output: str) -> set[str]:
    return {line.split(": KS007")[0].rsplit(":", 1)[1] for line in output.splitlines() if ": KS007 " in line}


def test_init_onnx_reads_the_graph(run_shim, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    tiny_onnx(model)
    kernel = tmp_path / "tiny"
    created = run_shim("init", "tiny", "--model", model, "--dir", kernel)
    assert created.returncode == 0, created.output
    metadata = read_json(kernel / "model_metadata.json")
    assert metadata["inputs"] == [
        {"name": "X", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "ids", "datatype": "INT64", "shape": [2]},
    ]
    assert metadata["outputs"] == [
        {"name": "Y", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "ids_out", "datatype": "INT64", "shape": [2]},
    ]
    assert (kernel / "model.onnx").read_bytes() == model.read_bytes()
    sample = read_json(kernel / "samples" / "example.json")
    assert [t["name"] for t in sample["expected"]["outputs"]] == ["Y", "ids_out"]

    unfilled = run_shim("validate", kernel)
    assert unfilled.returncode == 1
    codes = {line.split(": ")[1].split()[0] for line in unfilled.stdout.splitlines() if ": KS" in line}
    assert codes == {"KS007"}, unfilled.stdout
    assert placeholder_paths(unfilled.stdout) == {"$.description", "$.created_by", "$.training_dataset",
                                                  "$.cost_center"}

    fill_in(kernel)
    filled = run_shim("validate", kernel)
    assert filled.returncode == 0, filled.output
    assert "1 golden sample(s) matched" in filled.stdout


def test_init_torchscript_with_inputs(run_shim, tmp_path: Path) -> None:
    kernel = tmp_path / "mlp"
    created = run_shim("init", "mlp", "--model", EXAMPLE_KERNELS / "torchscript-mlp" / "model.pt",
                       "--input", "x:FP32:-1x8", "--max-batch-size", "8", "--dir", kernel)
    assert created.returncode == 0, created.output
    metadata = read_json(kernel / "model_metadata.json")
    assert metadata["framework"] == "torchscript" and metadata["model_file"] == "model.pt"
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 8]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["batching"]["max_batch_size"] == 8

    unfilled = run_shim("validate", kernel)
    assert unfilled.returncode == 1
    assert placeholder_paths(unfilled.stdout) == {"$.description", "$.created_by", "$.training_dataset",
                                                  "$.cost_center"}
    fill_in(kernel)
    filled = run_shim("validate", kernel)
    assert filled.returncode == 0, filled.output


def test_init_string_model_round_trips_bytes(run_shim, tmp_path: Path) -> None:
    """BYTES tensors: onnxruntime returns str, the protocol carries bytes; the sample still matches."""
    model = tmp_path / "strings.onnx"
    string_onnx(model)
    kernel = tmp_path / "strings"
    assert run_shim("init", "strings", "--model", model, "--dir", kernel).returncode == 0
    fill_in(kernel)
    assert run_shim("validate", kernel).returncode == 0
    edit_json(kernel / "samples" / "example.json",
              lambda s: s["expected"]["outputs"][0]["data"].__setitem__(1, "SOMETHING ELSE"))
    wrong = run_shim("validate", kernel)
    assert wrong.returncode == 1
    assert ":$.expected.outputs[0].data[1]: KS305 output 'normalized' element 1 is b'text-1'" in wrong.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "{mlp}"], "give each input as --input name:DTYPE:SHAPE"),
        (["--model", "{mlp}", "--input", "x:FLOAT:-1x8"], "unknown datatype 'FLOAT'"),
        (["--model", "{mlp}", "--input", "x:FP32"], "expected name:DTYPE:SHAPE"),
        (["--model", "{mlp}", "--input", "x:FP32:-1x0"], "positive or -1"),
        (["--model", "{onnx}", "--input", "X:FP32:-1x4"], "--input is only for TorchScript"),
        (["--model", "{missing}"], "no such file"),
        (["--model", "{text}"], "unknown model type '.txt'"),
    ],
)
def test_init_usage_errors(run_shim, tmp_path: Path, arguments: list[str], message: str) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    paths = {
        "mlp": EXAMPLE_KERNELS / "torchscript-mlp" / "model.pt",
        "onnx": EXAMPLE_KERNELS / "iris-classifier" / "model.onnx",
        "missing": tmp_path / "missing.onnx",
        "text": text,
    }
    result = run_shim("init", "k", *(a.format(**paths) for a in arguments), "--dir", tmp_path / "k")
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "k").exists()


def test_init_refuses_a_non_empty_directory(run_shim, tmp_path: Path) -> None:
    kernel = tmp_path / "k"
    kernel.mkdir()
    (kernel / "keep.txt").write_text("mine")
    model = EXAMPLE_KERNELS / "iris-classifier" / "model.onnx"
    result = run_shim("init", "k", "--model", model, "--dir", kernel)
    assert result.returncode == 2 and "already exists and is not empty" in result.stderr
    assert json.loads(json.dumps(sorted(p.name for p in kernel.iterdir()))) == ["keep.txt"]
