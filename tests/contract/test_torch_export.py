"""torch.export kernels (framework ``torch_export``, ``model.pt2``) through the real validator.

The example validates clean; each way a contract can disagree with the exported program (input
name, datatype, a static dimension, a dynamic dimension declared static, a static one declared
dynamic, an output's datatype, an output count, a batch size beyond the exported range) is a
specific finding at the contract field; ``shim init`` on freshly exported programs needs no
``--input`` and yields kernels that validate once the FILL_ME fields are filled; torch's
deprecation warnings never reach shim's output.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import EXAMPLE_KERNELS, edit_json, read_json

torch = pytest.importorskip("torch")

from shim.contract.torch_export_signature import load_signature  # noqa: E402
from shim.contract.validator import validate_kernel  # noqa: E402
from shim.spec.kernel import kernel_from_metadata  # noqa: E402

EXAMPLE = EXAMPLE_KERNELS / "torch-export-digits"
META = "model_metadata.json"
PERSON_FIELDS = {
    "description": "An exported test model.",
    "created_by": "data-science@example.com",
    "training_dataset": "s3://datasets/tiny/v1/",
    "cost_center": "cc-ml-4711",
}


def _copy(tmp_path: Path) -> Path:
    kernel = tmp_path / "kernel"
    shutil.copytree(EXAMPLE, kernel)
    return kernel


def _findings(kernel: Path) -> list[tuple[str, str]]:
    return [(f.code, f.path) for f in validate_kernel(kernel).findings]


def test_example_validates_clean() -> None:
    report = validate_kernel(EXAMPLE)
    assert report.ok, "\n".join(f.render() for f in report.findings)
    assert report.samples_run >= 1


def test_signature_is_read_from_the_program_json() -> None:
    metadata = read_json(EXAMPLE / META)
    signature = load_signature(kernel_from_metadata(EXAMPLE, metadata))
    assert [(t.name, t.datatype.name, t.dims) for t in signature.inputs] == [
        ("image", "FP32", (None, 1, 8, 8))
    ]
    assert signature.inputs[0].ranges[0] == (1, 64)
    assert signature.named_outputs
    assert [(t.name, t.datatype.name, t.dims) for t in signature.outputs] == [
        ("probabilities", "FP32", (None, 10)),
        ("label", "INT64", (None,)),
    ]


MISMATCHES: dict[str, tuple[Callable[[dict], object], str, str]] = {
    "input-name": (lambda m: m["inputs"][0].__setitem__("name", "pixels"), "KS201", "$.inputs[0].name"),
    "input-dtype": (
        lambda m: m["inputs"][0].__setitem__("datatype", "FP64"),
        "KS203",
        "$.inputs[0].datatype",
    ),
    "static-dim": (
        lambda m: m["inputs"][0].__setitem__("shape", [-1, 1, 8, 9]),
        "KS205",
        "$.inputs[0].shape[3]",
    ),
    "dynamic-dim-declared-static": (
        lambda m: (m["inputs"][0].__setitem__("shape", [4, 1, 8, 8]), m.pop("batching")),
        "KS206",
        "$.inputs[0].shape[0]",
    ),
    "static-dim-declared-dynamic": (
        lambda m: m["inputs"][0].__setitem__("shape", [-1, -1, 8, 8]),
        "KS207",
        "$.inputs[0].shape[1]",
    ),
    "rank": (lambda m: m["inputs"][0].__setitem__("shape", [-1, 64]), "KS204", "$.inputs[0].shape"),
    "output-dtype": (
        lambda m: m["outputs"][1].__setitem__("datatype", "INT32"),
        "KS203",
        "$.outputs[1].datatype",
    ),
    "output-name": (lambda m: m["outputs"][1].__setitem__("name", "class"), "KS201", "$.outputs[1].name"),
    "batch-beyond-exported-range": (
        lambda m: m["batching"].__setitem__("max_batch_size", 128),
        "KS111",
        "$.inputs[0].shape[0]",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_contract_mismatch_is_a_finding(case: str, tmp_path: Path) -> None:
    change, code, path = MISMATCHES[case]
    kernel = _copy(tmp_path)
    edit_json(kernel / META, change)
    report = validate_kernel(kernel)
    assert (code, path) in [(f.code, f.path) for f in report.findings], [f.render() for f in report.findings]
    assert report.samples_run == 0  # a contract that disagrees with the program never runs it


def _set_program_range(kernel: Path, low: int, high: int | None) -> None:
    """Rewrite the example program's batch range in its JSON (the gate still accepts the archive)."""
    model = kernel / "model.pt2"
    with zipfile.ZipFile(model) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    program = json.loads(members["model/models/model.json"])
    for constraint in program["range_constraints"].values():
        constraint.update(min_val=low, max_val=high)
    members["model/models/model.json"] = json.dumps(program).encode()
    with zipfile.ZipFile(model, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("low", "high", "finding"),
    [(3, 64, "from 3"), (2, None, None), (0, 32, None), (1, 31, "up to 31")],
    ids=["min-3", "torch-default-min-2", "max-equals-batch", "max-below-batch"],
)
def test_exported_range_against_batching(
    tmp_path: Path, low: int, high: int | None, finding: str | None
) -> None:
    """max_batch_size is 32: the range must reach it, and must admit a one-row request (torch's
    own min of 2 for an unbounded Dim still accepts 1, so it is no finding)."""
    kernel = _copy(tmp_path)
    _set_program_range(kernel, low, high)
    found = [f for f in validate_kernel(kernel).findings if f.code == "KS111"]
    if finding is None:
        assert found == []
    else:
        assert len(found) == 1 and finding in found[0].message, [f.render() for f in found]


class TwoInputs(torch.nn.Module):
    """Tuple outputs (positional, named by the contract), an INT64 input, a static and a dynamic dim."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 4)
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, features: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        combined = features + self.embedding(category)
        return self.linear(combined), combined.sum(dim=1)


class Conv(torch.nn.Module):
    """A single tensor output and two dynamic dimensions (batch and sequence length)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 5, 3, padding=1)
        self.register_buffer("scale", torch.tensor([2.0]))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(signal)) * self.scale


class Nested(torch.nn.Module):
    """Nested outputs (a tuple holding a dict holding a list): served by position of the leaves."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        return x + 1, {"a": y * 2, "b": [x.sum(1), y.mean(1)]}


def _export_nested(path: Path) -> None:
    batch = torch.export.Dim("batch", max=64)
    program = torch.export.export(
        Nested(), (torch.randn(2, 3), torch.randn(2, 5)), dynamic_shapes={"x": {0: batch}, "y": {0: batch}}
    )
    torch.export.save(program, str(path))


def _export_two_inputs(path: Path) -> None:
    torch.manual_seed(1)
    batch = torch.export.Dim("batch", min=1, max=256)
    program = torch.export.export(
        TwoInputs().eval(),
        (torch.randn(3, 4), torch.tensor([1, 2, 3])),
        dynamic_shapes={"features": {0: batch}, "category": {0: batch}},
    )
    torch.export.save(program, str(path))


def _export_conv(path: Path) -> None:
    torch.manual_seed(2)
    program = torch.export.export(
        Conv().eval(),
        (torch.randn(2, 3, 16),),
        dynamic_shapes={
            "signal": {0: torch.export.Dim("batch", max=128), 2: torch.export.Dim("length", max=512)}
        },
    )
    torch.export.save(program, str(path))


@pytest.mark.parametrize(
    ("exporter", "inputs", "outputs"),
    [
        (
            _export_two_inputs,
            [
                {"name": "features", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "category", "datatype": "INT64", "shape": [-1]},
            ],
            [
                {"name": "output_0", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "output_1", "datatype": "FP32", "shape": [-1]},
            ],
        ),
        (
            _export_conv,
            [{"name": "signal", "datatype": "FP32", "shape": [-1, 3, -1]}],
            [{"name": "output", "datatype": "FP32", "shape": [-1, 5, -1]}],
        ),
        (
            _export_nested,
            [
                {"name": "x", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "y", "datatype": "FP32", "shape": [-1, 5]},
            ],
            [
                {"name": "output_0", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "output_1", "datatype": "FP32", "shape": [-1, 5]},
                {"name": "output_2", "datatype": "FP32", "shape": [-1]},
                {"name": "output_3", "datatype": "FP32", "shape": [-1]},
            ],
        ),
    ],
    ids=["two-inputs-tuple-outputs", "conv-two-dynamic-dims", "nested-outputs"],
)
def test_init_reads_the_signature_and_the_kernel_validates(
    run_shim, tmp_path: Path, exporter, inputs: list, outputs: list
) -> None:
    model = tmp_path / "exported.pt2"
    exporter(model)
    kernel = tmp_path / "kernel"
    created = run_shim("init", "exported", "--model", model, "--dir", kernel, "--max-batch-size", "16")
    assert created.returncode == 0, created.output
    metadata = read_json(kernel / META)
    assert metadata["framework"] == "torch_export" and metadata["model_file"] == "model.pt2"
    assert metadata["inputs"] == inputs
    assert metadata["outputs"] == outputs

    unfilled = run_shim("validate", kernel)
    assert unfilled.returncode == 1
    assert {line.split(": ")[1].split()[0] for line in unfilled.stdout.splitlines() if ": KS" in line} == {
        "KS007"
    }

    edit_json(kernel / META, lambda m: m.update(PERSON_FIELDS))
    filled = run_shim("validate", kernel)
    assert filled.returncode == 0, filled.output
    assert "1 golden sample(s) matched" in filled.stdout
    assert "deprecated" not in filled.output.lower() and "Warning:" not in filled.output


def test_init_refuses_input_options_for_pt2(run_shim, tmp_path: Path) -> None:
    model = tmp_path / "exported.pt2"
    _export_conv(model)
    result = run_shim("init", "exported", "--model", model, "--dir", tmp_path / "k", "--input", "x:FP32:-1x3")
    assert result.returncode != 0
    assert "read from the exported program" in result.output


def test_positional_outputs_count_mismatch(tmp_path: Path, run_shim) -> None:
    model = tmp_path / "exported.pt2"
    _export_two_inputs(model)
    kernel = tmp_path / "kernel"
    assert run_shim("init", "exported", "--model", model, "--dir", kernel).returncode == 0
    edit_json(kernel / META, lambda m: (m.update(PERSON_FIELDS), m["outputs"].pop()))
    assert ("KS202", "$.outputs") in _findings(kernel)


@pytest.mark.parametrize("kernel", ["torchscript-mlp", "torch-export-digits"])
def test_no_torch_warning_reaches_shim_output(run_shim, shim_env: dict, tmp_path: Path, kernel: str) -> None:
    """TorchScript is the legacy path: it still works, and torch's own deprecation notice
    ("torch.jit.load is deprecated") is not shim's output, even with every warning switched on.
    ``shim init`` loads the model in-process, so it is where a warning would surface."""
    env = {**shim_env, "PYTHONWARNINGS": "always"}
    source = EXAMPLE_KERNELS / kernel
    model = next(p for p in source.iterdir() if p.suffix in (".pt", ".pt2"))
    extra = ["--input", "x:FP32:-1x8"] if model.suffix == ".pt" else []
    created = run_shim("init", "again", "--model", model, "--dir", tmp_path / "k", *extra, env=env)
    assert created.returncode == 0, created.output
    validated = run_shim("validate", source, env=env)
    assert validated.returncode == 0, validated.output
    for output in (created.output, validated.output):
        assert "deprecated" not in output.lower() and "Warning:" not in output, output


def test_any_program_json_gives_a_signature_or_a_clear_error() -> None:
    """The program JSON is attacker-shaped input (strict JSON in torch's layout is all the gate
    proves): random type swaps anywhere in it give a signature or ExportSignatureError (KS110),
    never another exception (a traceback, exit 70)."""
    import contextlib
    import copy
    import random

    from shim.contract.torch_export_signature import ExportSignatureError, read_signature

    with zipfile.ZipFile(EXAMPLE / "model.pt2") as archive:
        base = json.loads(archive.read("model/models/model.json"))
    values = [None, 1, -5, "x", [], {}, [1, 2], {"as_int": "3"}, {"as_expr": {"expr_str": 5}}, 1.5, True]

    def paths(node, path=()):
        yield path
        children = (
            node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        )
        for key, child in children:
            if key != "nodes":  # the graph's nodes are not read for the signature
                yield from paths(child, (*path, key))

    every = [p for p in paths(base) if p]
    rng = random.Random(13)
    for _ in range(1500):
        program = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(every)
            target = program
            try:
                for key in parents:
                    target = target[key]
                target[last] = rng.choice(values)
            except (KeyError, IndexError, TypeError):
                continue
        with contextlib.suppress(ExportSignatureError):
            read_signature(program)
