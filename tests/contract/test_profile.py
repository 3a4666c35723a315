"""``shim profile`` and the profile reader: every reference format, every bad input a clear finding.

Real data (scikit-learn's iris, random draws), the real model run in the validator's sandboxed
child, real scipy for the sketch bound.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHIM_COMMAND, edit_json
from scipy import stats

from shim.contract.kernel import read_kernel
from shim.contract.profile_check import ProfileError, load_profile
from shim.contract.profiling import ProfileBuildError, _continuous, build_profile
from shim.server.monitoring.drift import chi2, ks
from shim.spec.monitoring import Reference

sys.path.insert(0, str(REPO / "tests" / "server"))
from monitoring_kernels import iris_split

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris_rows() -> np.ndarray:
    return iris_split()[0]


def write_csv(path: Path, rows: np.ndarray, columns: list[str] = FEATURES) -> Path:
    lines = [",".join(columns)] + [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def comparable(document: dict) -> dict:
    return {k: v for k, v in document.items() if k not in ("data", "created_at")}


def run_profile(kernel: Path, *data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHIM_COMMAND, "profile", str(kernel), "--data", *map(str, data)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def test_cli_profile_from_csv_is_the_committed_example_profile(
    kernel_copy, tmp_path: Path, iris_rows
) -> None:
    kernel = kernel_copy("iris-classifier")
    committed = json.loads((kernel / "profile.json").read_text())
    (kernel / "profile.json").unlink()
    data = write_csv(tmp_path / "train.csv", iris_rows)
    result = run_profile(kernel, data)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote" in result.stdout and "120 rows, 4 features, 2 outputs" in result.stdout
    written = json.loads((kernel / "profile.json").read_text())
    assert comparable(written) == comparable(committed)
    assert written["rows"] == 120 and written["data"][0]["rows"] == 120  # held-back rows stay out
    import hashlib

    assert written["data"][0]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    labels = next(o for o in written["outputs"] if o["name"] == "label")
    assert labels["kind"] == "label" and sum(labels["reference"]["counts"]) == 120


@pytest.mark.parametrize("fmt", ["parquet", "npy", "jsonl"])
def test_every_format_gives_the_same_profile(kernel_copy, tmp_path: Path, iris_rows, fmt: str) -> None:
    kernel = kernel_copy("iris-classifier")
    committed = json.loads((kernel / "profile.json").read_text())
    if fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        data = tmp_path / "train.parquet"
        pq.write_table(pa.table({name: iris_rows[:, i] for i, name in enumerate(FEATURES)}), data)
    elif fmt == "npy":
        data = tmp_path / "X.npy"
        np.save(data, iris_rows)
    else:
        data = tmp_path / "requests.jsonl"
        data.write_text(
            "".join(
                json.dumps(
                    {
                        "inputs": [
                            {
                                "name": "X",
                                "datatype": "FP32",
                                "shape": [10, 4],
                                "data": iris_rows[i : i + 10].ravel().tolist(),
                            }
                        ]
                    }
                )
                + "\n"
                for i in range(0, 120, 10)
            )
        )
    _path, document = build_profile(kernel, [data])
    assert comparable(document) == comparable(committed)


def test_large_reference_is_sketched_within_its_stated_bound(kernel_copy, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    reference = rng.gamma(2.0, 1.5, 50_000)
    sketch = Reference.from_json(_continuous(reference, max_sample=5000, points=None))
    assert sketch.type == "quantiles" and sketch.ks_bound == pytest.approx(1 / 1000)
    full = Reference.from_json({"type": "sample", "values": reference.tolist()})
    for shift in (0.0, 0.0, 0.05, 0.3, 1.0):
        window = rng.gamma(2.0, 1.5, 800) + shift
        exact = stats.ks_2samp(window, reference)
        assert abs(ks(window, full).statistic - exact.statistic) <= 1e-9
        assert abs(ks(window, sketch).statistic - exact.statistic) <= sketch.ks_bound
        assert ks(window, sketch).p_value == pytest.approx(exact.pvalue, abs=0.02)


def test_categorical_features_use_chi_squared(kernel_copy, tmp_path: Path) -> None:
    """The ranker's INT64 category (0-9) is profiled as categorical; a window is tested with chi2."""
    kernel = kernel_copy("two-input-ranker")
    edit_json(
        kernel / "model_metadata.json", lambda m: m.__setitem__("monitoring", {"profile": "profile.json"})
    )
    rng = np.random.default_rng(1)
    np.save(tmp_path / "features.npy", rng.standard_normal((400, 4)).astype(np.float32))
    np.save(tmp_path / "category.npy", rng.integers(0, 10, 400))
    _path, document = build_profile(kernel, [tmp_path / "features.npy", tmp_path / "category.npy"])
    category = next(f for f in document["features"] if f["name"] == "category")
    assert category["kind"] == "categorical" and sum(category["reference"]["counts"]) == 400
    reference = Reference.from_json(category["reference"])
    assert chi2(rng.integers(0, 10, 300), reference).p_value > 1e-3
    assert chi2(rng.integers(0, 3, 300), reference).p_value < 1e-6
    assert load_profile(read_kernel(kernel))[0].rows == 400


def finding(kernel: Path, *data: Path) -> tuple[str, str]:
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(kernel, list(data))
    first = caught.value.findings[0]
    return first.code, first.render()


def test_bad_reference_data_is_a_clear_finding_and_loses_nothing(
    kernel_copy, tmp_path: Path, iris_rows
) -> None:
    kernel = kernel_copy("iris-classifier")
    before = (kernel / "profile.json").read_bytes()
    wrong = write_csv(
        tmp_path / "wrong.csv", iris_rows, ["sepal_length", "sepal_width", "petal_len", "petal_width"]
    )
    result = run_profile(kernel, wrong)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "KS721" in result.stdout and "'petal_length'" in result.stdout and "petal_length" in result.stdout
    assert (kernel / "profile.json").read_bytes() == before  # nothing lost
    code, text = finding(kernel, tmp_path / "absent.csv")
    assert code == "KS720" and "does not exist" in text
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    assert finding(kernel, tmp_path / "data.xlsx")[0] == "KS720"
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(",".join(FEATURES) + "\n1,2,3,4\n1,2,3\n")
    code, text = finding(kernel, ragged)
    assert code == "KS720" and "line 3" in text
    text_column = tmp_path / "text.csv"
    text_column.write_text(",".join(FEATURES) + "\n1,2,secret-value,4\n")
    code, text = finding(kernel, text_column)
    assert code == "KS722" and "secret-value" not in text  # values from the file are never echoed
    objects = tmp_path / "X.npy"
    np.save(objects, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    code, text = finding(kernel, objects)
    assert code == "KS722" and "never objects or pickles" in text
    shaped = tmp_path / "shaped" / "X.npy"
    shaped.parent.mkdir()
    np.save(shaped, np.zeros((5, 3), dtype=np.float32))
    assert finding(kernel, shaped)[0] == "KS721"
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}) + "\n"
    )
    code, text = finding(kernel, requests)
    assert code == "KS723" and "line 1" in text
    requests.write_text("{not json\n")
    assert finding(kernel, requests)[0] == "KS723"
    with pytest.raises(ProfileBuildError) as caught:
        build_profile(kernel, [write_csv(tmp_path / "ok.csv", iris_rows)], max_bytes=2000)
    assert caught.value.findings[0].code == "KS725"
    assert (kernel / "profile.json").read_bytes() == before


def test_model_failing_on_the_reference_data_is_a_finding(kernel_copy, tmp_path: Path) -> None:
    """The ranker's embedding has 10 rows: category 50 makes onnxruntime's Gather fail, in the child."""
    kernel = kernel_copy("two-input-ranker")
    np.save(tmp_path / "features.npy", np.zeros((8, 4), dtype=np.float32))
    np.save(tmp_path / "category.npy", np.full(8, 50, dtype=np.int64))
    code, text = finding(kernel, tmp_path / "features.npy", tmp_path / "category.npy")
    assert code == "KS724" and "model.onnx" in text


def test_profile_reader_refuses_damaged_profiles(kernel_copy) -> None:
    """What the gate stops in ``shim validate`` (KS407/KS409), the reader the server uses stops too."""
    kernel = kernel_copy("iris-classifier")
    with pytest.raises(ProfileError) as caught:
        load_profile(read_kernel(kernel), max_bytes=1000)
    assert caught.value.findings[0].code == "KS702" and "1,000 bytes" in caught.value.findings[0].expected
    (kernel / "profile.json").write_text('{"profile_version": "1", "rows": NaN}')
    with pytest.raises(ProfileError) as caught:
        load_profile(read_kernel(kernel))
    assert caught.value.findings[0].code == "KS702"
    (kernel / "profile.json").write_text("[]")
    with pytest.raises(ProfileError) as caught:
        load_profile(read_kernel(kernel))
    assert caught.value.findings[0].code == "KS703"


def test_images_are_profiled_by_declared_per_channel_summaries(tmp_path: Path) -> None:
    """A [N, 3, 8, 8] input is monitored by its per-channel mean (monitoring.summaries), not per pixel."""
    import onnx
    from onnx import TensorProto, helper

    from shim.contract.scaffold import write_golden_sample
    from shim.contract.validator import validate_kernel
    from shim.spec.monitoring import feature_columns, feature_layout

    kernel = tmp_path / "images"
    kernel.mkdir()
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["score"]),
        ],
        "pool",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
        str(kernel / "model.onnx"),
    )
    metadata = {
        "contract_version": "1",
        "name": "pooled-images",
        "version": "1.0.0",
        "framework": "onnx",
        "model_file": "model.onnx",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 8, 8]}],
        "outputs": [{"name": "score", "datatype": "FP32", "shape": [-1, 3]}],
        "created_at": "2026-11-01T09:00:00Z",
        "created_by": "ds@example.com",
        "training_dataset": "s3://img/v1/",
        "cost_center": "cc-1",
        "batching": {"max_batch_size": 16},
        "monitoring": {
            "profile": "profile.json",
            "summaries": [
                {"name": "brightness", "input": "image", "statistic": "mean", "channel_axis": 1},
                {"name": "contrast", "input": "image", "statistic": "std"},
            ],
        },
    }
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    (kernel / "samples").mkdir()
    write_golden_sample(kernel, metadata)
    images = np.random.default_rng(3).uniform(0, 1, (50, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "image.npy", images)
    _path, document = build_profile(kernel, [tmp_path / "image.npy"])
    names = [f["name"] for f in document["features"]]
    assert names == ["brightness[0]", "brightness[1]", "brightness[2]", "contrast"]
    assert document["outputs"] == []  # a score that is neither label, probability nor one value
    loaded = read_kernel(kernel)
    columns = feature_columns(feature_layout(loaded), {"image": images})
    np.testing.assert_allclose(columns["brightness[1]"], images[:, 1].reshape(50, -1).mean(axis=1), rtol=1e-6)
    reference = sorted(
        next(f for f in document["features"] if f["name"] == "brightness[1]")["reference"]["values"]
    )
    np.testing.assert_allclose(reference, np.sort(columns["brightness[1]"]))
    assert validate_kernel(kernel).ok
