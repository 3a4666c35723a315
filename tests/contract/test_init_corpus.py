"""``shim init`` on a corpus of real models (tests/init_corpus.py): init -> fill the FILL_ME fields
-> validate -> serve -> infer. Every model onnxruntime can run ends valid (and a few are served and
answer their golden request); the others end with a clear message, exit 1, never "internal error"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import edit_json, read_json
from init_corpus import CORPUS, CorpusModel
from server.conftest import start_server

from shim.cli.main import main
from shim.contract.validator import validate_kernel
from shim.strict_json import loads_strict

PERSON_FIELDS = {
    "description": "A model of the init corpus.",
    "created_by": "data-science@example.com",
    "training_dataset": "s3://datasets/corpus/v1/",
    "cost_center": "cc-ml-4711",
}
SERVED = ["torch-mlp", "skl-zipmap-classifier", "skl-label-encoder", "torch-always-nan", "lying-output-shape"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every corpus model built once per session."""
    directory = tmp_path_factory.mktemp("init-corpus")
    models = {}
    for model in CORPUS:
        path = directory / f"{model.name}.onnx"
        model.build(path)
        models[model.name] = path
    return models


@pytest.fixture(scope="session")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("init-corpus-kernels")


def shim(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str]:
    """``shim ARGS`` through the real CLI entry point, in this process (the model still runs in the
    sandboxed child): exit status and everything printed."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "internal error" not in output and "Traceback" not in output, output
    return code, output


def init(capsys, model: CorpusModel, source: Path, kernel: Path, *extra: object) -> tuple[int, str]:
    batch = ("--max-batch-size", model.max_batch_size) if model.max_batch_size else ()
    return shim(capsys, "init", model.name, "--model", source, "--dir", kernel, *batch, *extra)


@pytest.mark.parametrize("model", CORPUS, ids=[m.name for m in CORPUS])
def test_init_then_validate(model: CorpusModel, corpus: dict[str, Path], kernels: Path, capsys) -> None:
    kernel = kernels / model.name
    code, output = init(capsys, model, corpus[model.name], kernel)
    assert model.says in output, output
    if model.outcome == "rejected":
        assert code == 1, output
        assert f"{kernel}" in output and ("--sample" in output or "cannot be loaded" in output)
        return
    assert code == 0, output
    sample = kernel / "samples" / "example.json"
    loads_strict(sample.read_bytes())  # JSON-valid: no bare NaN
    unfilled = validate_kernel(kernel)
    assert {f.code for f in unfilled.errors} == {"KS007"}, [f.render() for f in unfilled.findings]
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))
    report = validate_kernel(kernel)
    assert report.ok, "\n".join(f.render() for f in report.findings)
    assert report.samples_run == 1


def test_non_finite_outputs_are_written_as_the_schema_says(corpus, kernels, capsys) -> None:
    """After test_init_then_validate (or on its own): the always-NaN model's sample and contract."""
    model = next(m for m in CORPUS if m.name == "torch-always-nan")
    kernel = kernels / "nan-check"
    assert init(capsys, model, corpus[model.name], kernel)[0] == 0
    metadata = read_json(kernel / "model_metadata.json")
    outputs = {o["name"]: o for o in metadata["outputs"]}
    assert outputs["root"].get("allow_non_finite") is True and "allow_non_finite" not in outputs["double"]
    expected = {o["name"]: o for o in read_json(kernel / "samples" / "example.json")["expected"]["outputs"]}
    assert set(expected["root"]["data"]) == {"NaN"}
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))
    assert validate_kernel(kernel).ok
    # the comparison honours it: a finite expectation where the model returns NaN is a mismatch
    edit_json(kernel / "samples" / "example.json",
              lambda s: s["expected"]["outputs"][0]["data"].__setitem__(0, 1.0))
    assert [f.code for f in validate_kernel(kernel).findings] == ["KS305"]
    # and NaN expected from an output whose contract does not allow it is refused
    edit_json(kernel / "samples" / "example.json",
              lambda s: s["expected"]["outputs"][0]["data"].__setitem__(0, "NaN"))
    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][0].pop("allow_non_finite"))
    assert [f.code for f in validate_kernel(kernel).findings] == ["KS302"]


def test_lying_output_shape_is_taken_from_the_run(corpus, kernels, capsys) -> None:
    model = next(m for m in CORPUS if m.name == "lying-output-shape")
    kernel = kernels / "lying-check"
    code, output = init(capsys, model, corpus[model.name], kernel)
    assert code == 0 and "returned [2, 5]" in output and "[-1, 5]" in output, output
    assert read_json(kernel / "model_metadata.json")["outputs"][0]["shape"] == [-1, 5]
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))
    report = validate_kernel(kernel)
    assert report.ok and [(f.code, f.severity) for f in report.findings] == [("KS205", "warning")]


@pytest.mark.parametrize("form", ["json", "npy"])
def test_rejected_model_completed_with_a_real_sample(form: str, corpus, kernels, tmp_path: Path,
                                                     capsys) -> None:
    """The shape-tensor model rejects generated inputs; --sample supplies a real one, into the
    kernel the first run wrote."""
    model = next(m for m in CORPUS if m.name == "shape-tensor-input")
    kernel = kernels / f"shape-{form}"
    code, output = init(capsys, model, corpus[model.name], kernel)
    assert code == 1 and (kernel / "model_metadata.json").is_file()
    x = np.linspace(0, 1, 101, dtype=np.float32).reshape(1, 101)
    if form == "json":
        request = tmp_path / "request.json"
        request.write_text(json.dumps({"inputs": [
            {"name": "X", "datatype": "FP32", "shape": [1, 101], "data": x.ravel().tolist()},
            {"name": "shape", "datatype": "INT64", "shape": [2], "data": [101, 1]}]}))
        samples: tuple[object, ...] = ("--sample", request)
    else:
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "shape.npy", np.array([101, 1], dtype=np.int64))
        samples = ("--sample", f"X={tmp_path / 'x.npy'}", "--sample", f"shape={tmp_path / 'shape.npy'}")
    code, output = init(capsys, model, corpus[model.name], kernel, *samples)
    assert code == 0, output
    expected = read_json(kernel / "samples" / "example.json")["expected"]["outputs"][0]
    assert expected["shape"] == [101, 1]
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))
    assert validate_kernel(kernel).ok


def test_bad_sample_option_is_a_usage_error(corpus, kernels, tmp_path: Path, capsys) -> None:
    model = next(m for m in CORPUS if m.name == "shape-tensor-input")
    (tmp_path / "bad.json").write_text(
        '{"inputs": [{"name": "X", "datatype": "FP64", "shape": [1], "data": [1]}]}')
    code, output = init(capsys, model, corpus[model.name], kernels / "bad-sample", "--sample",
                        tmp_path / "bad.json")
    assert code == 2 and "--sample" in output and "FP64" in output


@pytest.mark.parametrize("name", SERVED)
def test_initialised_kernel_serves_its_golden_request(name: str, corpus, kernels, tmp_path: Path,
                                                      capsys) -> None:
    model = next(m for m in CORPUS if m.name == name)
    kernel = kernels / f"served-{name}"
    assert init(capsys, model, corpus[name], kernel)[0] == 0
    edit_json(kernel / "model_metadata.json", lambda m: m.update(PERSON_FIELDS))
    golden = read_json(kernel / "samples" / "example.json")
    server = start_server(kernel, tmp_path / "logs")
    try:
        response = httpx.post(f"{server.url}/v2/models/{name}/infer", json=golden["request"], timeout=30)
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    returned = {o["name"]: o for o in response.json()["outputs"]}
    for expected in golden["expected"]["outputs"]:
        got = returned[expected["name"]]
        assert got["shape"] == expected["shape"] and got["datatype"] == expected["datatype"]
        if expected["datatype"] == "BYTES":
            assert got["data"] == expected["data"]
            continue
        want = np.array([float(v) for v in expected["data"]], dtype=np.float64)
        have = np.array([np.nan if v is None else v for v in got["data"]], dtype=np.float64)
        assert np.allclose(have, want, rtol=1e-4, atol=1e-5, equal_nan=True), (have, want)


def test_unloadable_torchscript_is_the_models_failure(kernels, tmp_path: Path, capsys) -> None:
    model = tmp_path / "broken.pt"
    model.write_bytes(b"PK\x03\x04 not really a TorchScript archive")
    code, output = shim(capsys, "init", "broken", "--model", model, "--dir", kernels / "broken-pt",
                        "--input", "x:FP32:-1x4")
    assert code == 1 and "the model cannot be loaded" in output, output
