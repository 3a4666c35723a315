"""Properties of the artifact gate and the sandboxed sample run that no fixed corpus shows.

- Random trees of files (names, kinds, links, FIFOs, hostile and harmless bytes) never make the
  validator raise, never echo content from outside the kernel, and never leave a kernel with a
  non-contract file valid.
- ONNX external data in an If-subgraph, inside the kernel, is the framework's documented layout:
  accepted; the same file with extra bytes, or a location outside the kernel, is refused.
- The handler runs in a child with a scrubbed environment and a budget: it cannot see the
  validator's secrets, and a handler that never returns is a finding, not a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import string
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from shim.contract.report import RENDERERS
from shim.contract.validator import validate_kernel
from shim.policy.loader import load_policies
from tests.kernel_fixtures import policy_override

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "kernels" / "iris-classifier"
CANARY = "kernelshim-canary-7f3e9b21"

# -- random trees ------------------------------------------------------------------------------------

_PAYLOADS = [
    b"",
    b"\x80\x04\x95",
    b"cos\nsystem\n(S'true'\ntR.",
    b"PK\x03\x04" + b"\x00" * 40,
    b"\x1f\x8b\x08\x00",
    b"7z\xbc\xaf\x27\x1c" + b"\x00" * 30,
    b"\x93NUMPY\x01\x00v\x00{'descr': '|O'}",
    b"{}",
    b"[" * 500,
    b'{"a": 1}',
    b"# README\n",
    b"\x00\xff\xfe",
    "caf\u00e9\n".encode(),
    b"I0x1f\n.",
    b'{"a": 1' + b"0" * 5000 + b"}",  # beyond CPython's int() digit limit (was exit 70)
    '{"a": 1}'.encode("utf-16"),
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": "\\ud800"}',
]
_NAMES = st.sampled_from(
    [
        "README.md",
        "LICENSE",
        "notes.md",
        "weights.dat",
        "model.onnx",
        "model.pt",
        "requirements.txt",
        "handler.py",
        ".hidden",
        "__pycache__/handler.cpython-311.pyc",
        "samples/x.json",
        "samples/y.bin",
        "samples/.z.json",
        "assets/vocab.txt",
        "a/b/c/d.json",
        "model_metadata.json",
        "x\nnewline.md",
        "\x1b[31mred.md",
    ]
)
_ENTRY = st.tuples(
    _NAMES,
    st.sampled_from(
        ["file", "link-environ", "link-passwd", "link-inside", "fifo", "dir", "hardlink-outside"]
    ),
    st.one_of(st.sampled_from(_PAYLOADS), st.binary(max_size=64)),
)


def _materialise(kernel: Path, entries: list[tuple[str, str, bytes]]) -> None:
    for name, kind, payload in entries:
        path = kernel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if kind == "file":
            path.write_bytes(payload)
        elif kind == "link-environ":
            path.symlink_to("/proc/self/environ")
        elif kind == "link-passwd":
            path.symlink_to("/etc/passwd")
        elif kind == "link-inside":
            path.symlink_to("model.onnx")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "hardlink-outside":  # a second name of a file outside the kernel
            outside = kernel.parent / f"outside-{len(list(kernel.parent.iterdir()))}"
            outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
            os.link(outside, path)
        else:
            path.mkdir()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, min_size=1, max_size=6), keep_example=st.booleans())
def test_random_trees_never_crash_or_leak(tmp_path_factory, monkeypatch, entries, keep_example) -> None:
    monkeypatch.setenv("KERNELSHIM_TEST_CANARY", CANARY)
    kernel = tmp_path_factory.mktemp("tree") / "kernel"
    if keep_example:
        shutil.copytree(IRIS, kernel)
    else:
        kernel.mkdir()
    _materialise(kernel, entries)
    report = validate_kernel(kernel, run_golden_samples=False)
    rendered = "\n".join(renderer([report]) for renderer in RENDERERS.values())
    assert CANARY not in rendered and "root:x:0:0" not in rendered
    assert all(line.isprintable() for f in report.findings for line in (f.file,)), "names are escaped"
    contract_names = {
        "model_metadata.json",
        "model.onnx",
        "requirements.txt",
        "README.md",
        "LICENSE",
        "notes.md",
        "samples",
        "samples/x.json",
        "samples/example.json",
    }
    stray = [p for p in kernel.rglob("*") if p.relative_to(kernel).as_posix() not in contract_names]
    if stray:
        assert not report.ok, f"a kernel holding {stray} passed"


# -- ONNX external data in a subgraph -------------------------------------------------------------------


def _if_subgraph_kernel(kernel: Path) -> None:
    """X [N,4] -> If(cond=true): X + W, else X - W; W lives in weights.bin (then-branch initializer)."""
    shutil.copytree(IRIS, kernel)
    (kernel / "model.onnx").unlink()
    weight = numpy_helper.from_array(np.arange(1, 5, dtype=np.float32).reshape(1, 4), "W")
    y_info = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])
    then_graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])], "then", [], [y_info], initializer=[weight]
    )
    else_weight = numpy_helper.from_array(np.ones((1, 4), dtype=np.float32), "V")
    else_graph = helper.make_graph(
        [helper.make_node("Sub", ["X", "V"], ["Y"])], "else", [], [y_info], initializer=[else_weight]
    )
    cond = helper.make_node(
        "Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])
    )
    branch = helper.make_node("If", ["cond"], ["Y"], then_branch=then_graph, else_branch=else_graph)
    graph = helper.make_graph(
        [cond, branch],
        "if-subgraph",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [y_info],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(
        model,
        str(kernel / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
        convert_attribute=True,
    )
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata.pop("monitoring", None)  # the iris profile is of another model
    (kernel / "profile.json").unlink()
    metadata.update(
        name="if-subgraph",
        inputs=[{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        outputs=[{"name": "Y", "datatype": "FP32", "shape": [-1, 4]}],
    )
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=1))
    x = [[5.0, 3.0, 1.0, 0.5]]
    sample = {
        "request": {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": x[0]}]},
        "expected": {
            "outputs": [{"name": "Y", "shape": [1, 4], "datatype": "FP32", "data": [6.0, 5.0, 4.0, 4.5]}]
        },
    }
    shutil.rmtree(kernel / "samples")
    (kernel / "samples").mkdir()
    (kernel / "samples" / "example.json").write_text(json.dumps(sample))


def test_onnx_if_subgraph_external_data_inside_the_kernel_is_accepted(tmp_path: Path) -> None:
    kernel = tmp_path / "if-subgraph"
    _if_subgraph_kernel(kernel)
    assert (kernel / "weights.bin").stat().st_size > 0
    report = validate_kernel(kernel)
    assert report.ok, "\n".join(f.render() for f in report.findings)
    assert report.samples_run == 1


def test_external_data_with_extra_bytes_is_refused(tmp_path: Path) -> None:
    kernel = tmp_path / "if-subgraph"
    _if_subgraph_kernel(kernel)
    with (kernel / "weights.bin").open("ab") as handle:
        handle.write(b"cos\nsystem\n(S'true'\ntR.")
    report = validate_kernel(kernel)
    assert "KS407" in {f.code for f in report.findings}
    assert any(f.file.endswith("weights.bin") for f in report.findings)


def test_external_data_not_named_by_the_model_is_refused(tmp_path: Path) -> None:
    kernel = tmp_path / "if-subgraph"
    _if_subgraph_kernel(kernel)
    shutil.copy(kernel / "weights.bin", kernel / "more-weights.bin")
    report = validate_kernel(kernel)
    assert [f.code for f in report.findings if f.file.endswith("more-weights.bin")] == ["KS402"]


# -- the sandboxed golden-sample run ---------------------------------------------------------------------


def _with_handler(kernel: Path, source: str) -> None:
    shutil.copytree(IRIS, kernel)
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["preprocessing"] = {"handler": "handler.py"}
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=1))
    (kernel / "handler.py").write_text(source)


def test_handler_sees_no_inherited_secrets_and_a_private_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KERNELSHIM_AUTH_TOKENS", CANARY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    monkeypatch.chdir(tmp_path)
    kernel = tmp_path / "kernel"
    _with_handler(
        kernel,
        (
            "import os\n"
            "open('written-by-handler', 'w').write('x')\n"
            "def preprocess(inputs):\n"
            "    leaked = [k for k, v in os.environ.items() if v == " + repr(CANARY) + "]\n"
            "    raise RuntimeError('env=' + ','.join(sorted(os.environ)) + ' leaked=' + repr(leaked) + "
            "' cwd=' + os.getcwd())\n"
        ),
    )
    report = validate_kernel(kernel)
    message = " ".join(f.message for f in report.findings if f.code == "KS304")
    assert "leaked=[]" in message, message
    assert "AWS_SECRET_ACCESS_KEY" not in message and "KERNELSHIM_AUTH_TOKENS" not in message
    assert CANARY not in message
    assert "kernelshim-sandbox-" in message  # its own temporary working directory
    assert not (tmp_path / "written-by-handler").exists() and not (kernel / "written-by-handler").exists()


def test_handler_that_never_returns_is_a_budget_finding(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    _with_handler(kernel, "def preprocess(inputs):\n    while True:\n        pass\n")
    policies = load_policies(
        policy_override(
            tmp_path / "policies",
            sample_run={"wall_seconds": 8, "cpu_seconds": 60, "memory_bytes": 8 * 1024**3},
        )
    )
    report = validate_kernel(kernel, policies=policies)
    assert [f.code for f in report.findings] == ["KS410"]


def test_handler_allocating_without_bound_is_a_budget_finding(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    _with_handler(
        kernel,
        "def preprocess(inputs):\n    hoard = []\n    while True:\n"
        "        hoard.append(bytearray(64 * 1024 * 1024))\n",
    )
    policies = load_policies(
        policy_override(
            tmp_path / "policies",
            sample_run={"wall_seconds": 60, "cpu_seconds": 60, "memory_bytes": 2 * 1024**3},
        )
    )
    report = validate_kernel(kernel, policies=policies)
    codes = [f.code for f in report.findings]
    assert codes in (["KS410"], ["KS304"]), codes  # MemoryError may also surface as a failed inference


@pytest.mark.parametrize("name", ["x\nforged: KS000 ok.md", "\x1b[2Jclear.md", "caf\udce9.md"])
def test_odd_file_names_are_escaped_in_findings(tmp_path: Path, name: str) -> None:
    kernel = tmp_path / "kernel"
    shutil.copytree(IRIS, kernel)
    try:
        (kernel / name).write_bytes(b"\x00binary")
    except (UnicodeEncodeError, OSError):
        (kernel / os.fsencode(name).decode("utf-8", "surrogateescape")).write_bytes(b"\x00binary")
    report = validate_kernel(kernel, run_golden_samples=False)
    assert not report.ok
    assert all(f.file.isprintable() for f in report.findings)
    assert all(c in string.printable for c in RENDERERS["text"]([report]).replace("\n", ""))


# -- Ops extend the allowed files, never with a pattern that admits everything -----------------------------


def test_ops_can_allow_an_extra_file_by_name(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    shutil.copytree(IRIS, kernel)
    (kernel / "model_card.json").write_text('{"owner": "ds-core"}')
    assert "KS402" in {f.code for f in validate_kernel(kernel, run_golden_samples=False).findings}
    policies = load_policies(policy_override(tmp_path / "policies", extra_files=[
        {"pattern": "model_card.json", "kind": "json", "max_bytes": 4096}]))
    assert validate_kernel(kernel, policies=policies, run_golden_samples=False).ok
    (kernel / "model_card.json").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # still proven by content
    codes = {f.code for f in validate_kernel(kernel, policies=policies, run_golden_samples=False).findings}
    assert {"KS407", "KS403"} <= codes


@pytest.mark.parametrize("pattern", ["*", "*.*", "**", "?*", ".*", "*.pkl", "*.py", "*.zip", "*.bin",
                                     "model_metadata.json", "x/../y.md"])
def test_ops_cannot_allow_a_pattern_that_admits_refused_files(tmp_path: Path, pattern: str) -> None:
    from shim.policy.loader import PolicyError

    directory = policy_override(tmp_path / "policies", extra_files=[
        {"pattern": pattern, "kind": "text", "max_bytes": 4096}])
    with pytest.raises(PolicyError):
        load_policies(directory)


def test_archive_member_names_are_escaped_in_findings(tmp_path: Path) -> None:
    import zipfile

    kernel = tmp_path / "kernel"
    shutil.copytree(REPO / "examples" / "kernels" / "torchscript-mlp", kernel)
    with zipfile.ZipFile(kernel / "model.pt", "a") as archive:
        archive.writestr("mlp/extra\n::error::forged\x1b[2J", b"cos\nsystem\n(S'true'\ntR.")
    report = validate_kernel(kernel, run_golden_samples=False)
    assert {"KS408", "KS403"} <= {f.code for f in report.findings}
    assert all(f.file.isprintable() for f in report.findings)
    assert "\n::error::forged" not in RENDERERS["github"]([report])


def test_echoed_values_are_truncated(tmp_path: Path) -> None:
    """A requirement line or schema value of any length is shown shortened in the finding."""
    kernel = tmp_path / "kernel"
    shutil.copytree(IRIS, kernel)
    (kernel / "requirements.txt").write_text("x" * 50_000 + "==1.0\n")
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata["cost_center"] = "y" * 60_000
    (kernel / "model_metadata.json").write_text(json.dumps(metadata))
    report = validate_kernel(kernel, run_golden_samples=False)
    assert not report.ok
    assert all(len(f.message) <= 800 and len(f.expected) <= 600 for f in report.findings)
    assert any("characters)" in f.message for f in report.findings)
