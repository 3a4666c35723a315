"""Every kernel finding code, produced by a real broken kernel through the real validator.

Each case copies an example kernel, breaks one thing and checks that ``validate_kernel`` reports
the expected code at the expected file and JSON path / line. ``test_table_covers_every_code``
makes the table complete: adding a code to shim/findings.py without a case here fails the suite.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, edit_json
from kernel_fixtures import (
    add_zip_member,
    harmless_but_unlisted_pickle,
    malicious_pickle,
    onnx_failing_checker,
    onnx_with_external_data,
    policy_override,
    truncated_pickle,
)

from shim.contract.validator import validate_kernel
from shim.findings import CODES, Finding
from shim.policy.loader import load_policies

IRIS, MLP, RANKER = "iris-classifier", "torchscript-mlp", "two-input-ranker"
DIGITS = "torch-export-digits"
#: Produced by the Terraform plan gate, not by kernels; tests/iac covers them (see the last test).
PLAN_GATE_CODES = {code for code in CODES if code.startswith("KS6")}
META, REQ, SAMPLE = "model_metadata.json", "requirements.txt", "samples/example.json"
PROFILE = "profile.json"
#: Produced by the profile reader outside the validator (the gate refuses a damaged profile first,
#: KS407/KS409) and by `shim profile` on reference data; tests/contract/test_profile.py covers them.
PROFILE_CODES = {"KS702"} | {code for code in CODES if code.startswith("KS72")}
MEMBER, BROKEN = "model.pt!mlp/extra.pkl", "samples/broken.json"
DATA_PKL = "model.pt!mlp/data.pkl"


@dataclass(frozen=True)
class Case:
    id: str
    kernel: str
    mutate: Callable[[Path, Path], Path | None]  # (kernel dir, scratch dir) -> policy dir or None
    code: str
    file: str  # relative to the kernel dir; "." is the kernel dir itself
    path: str = ""  # expected JSON path / line prefix of the finding ("" = any)
    without_torch: bool = False  # run `shim validate` in an interpreter where torch is not installed


def metadata(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    return lambda kernel, _scratch: edit_json(kernel / "model_metadata.json", change)


def sample(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    return lambda kernel, _scratch: edit_json(kernel / "samples" / "example.json", change)


def profile(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    return lambda kernel, _scratch: edit_json(kernel / "profile.json", change)


def monitoring(key: str, value: object) -> Callable[[Path, Path], None]:
    return metadata(lambda m: m["monitoring"].__setitem__(key, value))


def small_profile_cap(_kernel: Path, scratch: Path) -> Path:
    from shim.policy.loader import load_policies

    limits = dict(load_policies().artifact["role_limits"], profile=1024)
    return policy_override(scratch / "policies", role_limits=limits)


def write(name: str, data: bytes | str) -> Callable[[Path, Path], None]:
    def apply(kernel: Path, _scratch: Path) -> None:
        target = kernel / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            target.write_text(data, encoding="utf-8")
        else:
            target.write_bytes(data)
    return apply


def requirements(text: str) -> Callable[[Path, Path], None]:
    return write("requirements.txt", text)


def both(*steps: Callable[[Path, Path], object]) -> Callable[[Path, Path], None]:
    def apply(kernel: Path, scratch: Path) -> None:
        for step in steps:
            step(kernel, scratch)
    return apply


def remove(name: str) -> Callable[[Path, Path], None]:
    def apply(kernel: Path, _scratch: Path) -> None:
        target = kernel / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return apply


def tensor(group: str, index: int, key: str, value: object) -> Callable[[Path, Path], None]:
    """Set one field of a declared tensor, e.g. tensor("outputs", 0, "datatype", "INT32")."""
    return metadata(lambda m: m[group][index].__setitem__(key, value))


def set_field(key: str, value: object) -> Callable[[dict], None]:
    return lambda m: m.__setitem__(key, value)


def drop_batching(m: dict) -> None:
    m.pop("batching", None)


def rename_model(kernel: Path, _scratch: Path) -> None:
    (kernel / "model.onnx").rename(kernel / "weights.onnx")
    edit_json(kernel / "model_metadata.json", set_field("model_file", "weights.onnx"))


def small_size_cap(_kernel: Path, scratch: Path) -> Path:
    return policy_override(scratch / "policies", max_kernel_size_bytes=1024)


def symlink(kernel: Path, _scratch: Path) -> None:
    os.symlink("model_metadata.json", kernel / "metadata-link.json")


def hard_link_outside(kernel: Path, scratch: Path) -> None:
    """requirements.txt as a second name of a file outside the kernel (no privilege needed)."""
    outside = scratch / "outside-secret.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (kernel / "requirements.txt").unlink(missing_ok=True)
    os.link(outside, kernel / "requirements.txt")


def evil_member_in_torchscript(kernel: Path, _scratch: Path) -> None:
    add_zip_member(kernel / "model.pt", "mlp/extra.pkl", malicious_pickle())


def unlisted_global_in_torchscript(kernel: Path, _scratch: Path) -> None:
    add_zip_member(kernel / "model.pt", "mlp/extra.pkl", harmless_but_unlisted_pickle())


def replace_zip_member(kernel: Path, member: str, data: bytes) -> None:
    """Rewrite model.pt with ``member`` replaced, keeping torch's stored, prefixed layout."""
    model = kernel / "model.pt"
    with zipfile.ZipFile(model) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[member] = data
    with zipfile.ZipFile(model, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def truncated_data_pkl(kernel: Path, _scratch: Path) -> None:
    replace_zip_member(kernel, "mlp/data.pkl", pickle.dumps({"weights": [1.0, 2.0, 3.0]}, protocol=2)[:-4])


def slow_scan_budget(_kernel: Path, scratch: Path) -> Path:
    return policy_override(scratch / "policies", scan={"wall_seconds": 0.001, "cpu_seconds": 60,
                                                       "memory_bytes": 8 * 1024**3})


def corrupt_archive_member(kernel: Path, _scratch: Path) -> None:
    """Flip a byte inside the archive's data.pkl: its CRC no longer matches, so it cannot be scanned."""
    model = kernel / "model.pt"
    with zipfile.ZipFile(model) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    raw = bytearray(model.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + name_length + extra_length + 5] ^= 0xFF
    model.write_bytes(bytes(raw))


def non_tensor_input_in_program(kernel: Path, _scratch: Path) -> None:
    """The program JSON declares a user input that is a SymInt, not a tensor (still strict JSON in
    torch's layout, so the gate passes it and the signature check must say why it cannot serve)."""
    model = kernel / "model.pt2"
    with zipfile.ZipFile(model) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    program = json.loads(members["model/models/model.json"])
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if "user_input" in spec:
            spec["user_input"]["arg"] = {"as_sym_int": {"as_name": "s0"}}
    members["model/models/model.json"] = json.dumps(program).encode()
    with zipfile.ZipFile(model, "w", zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def external_data(kernel: Path, scratch: Path) -> None:
    (scratch / "outside.data").write_bytes(b"\0" * 16)
    onnx_with_external_data(kernel / "model.onnx", "../outside.data")


def not_a_directory(kernel: Path, _scratch: Path) -> None:
    shutil.rmtree(kernel)
    kernel.write_text("a file, not a kernel directory\n")


def duplicate_output(m: dict) -> None:
    m["outputs"][1]["name"] = m["outputs"][0]["name"]


def _handler(source: str) -> Callable[[Path, Path], None]:
    return both(
        metadata(set_field("preprocessing", {"handler": "handler.py"})),
        write("handler.py", source),
    )


CASES = [
    # layout and metadata
    Case("not-a-directory", IRIS, not_a_directory, "KS001", "."),
    Case("metadata-missing", IRIS, remove(META), "KS002", META),
    Case("metadata-not-json", IRIS, write(META, '{"name": "x",\n  oops}\n'), "KS003",
         META, "line 2"),
    Case("required-field-missing", IRIS, metadata(lambda m: m.pop("cost_center")), "KS004",
         META, "$"),
    Case("bad-name", IRIS, metadata(set_field("name", "Iris_Classifier")), "KS004", META,
         "$.name"),
    Case("duplicate-tensor", IRIS, metadata(duplicate_output), "KS005", META,
         "$.outputs[1].name"),
    Case("batching-static-dim", IRIS, tensor("inputs", 0, "shape", [8, 4]), "KS006",
         META, "$.inputs[0].shape"),
    Case("placeholder", IRIS, metadata(set_field("created_by", "FILL_ME: your e-mail")), "KS007",
         META, "$.created_by"),
    Case("handler-missing", IRIS, metadata(set_field("preprocessing", {"handler": "handler.py"})), "KS008",
         META, "$.preprocessing.handler"),
    Case("handler-syntax", IRIS, _handler("def preprocess(inputs)\n    return inputs\n"), "KS008",
         "handler.py", "line 1"),
    Case("handler-no-function", IRIS, _handler("VALUE = 1\n"), "KS008", "handler.py"),
    # model file
    Case("model-missing", IRIS, remove("model.onnx"), "KS101", "model.onnx"),
    Case("model-name", IRIS, rename_model, "KS102", META, "$.model_file"),
    Case("model-garbage", IRIS, write("model.onnx", b"\x08\x07not protobuf" * 8), "KS103", "model.onnx"),
    Case("model-fails-checker", IRIS, lambda k, _s: onnx_failing_checker(k / "model.onnx"), "KS103",
         "model.onnx"),
    Case("torch-not-installed", MLP, lambda _k, _s: None, "KS104", "model.pt", without_torch=True),
    Case("external-data-outside", IRIS, external_data, "KS105", "model.onnx", "tensor 'w'"),
    Case("torch-export-non-tensor-input", DIGITS, non_tensor_input_in_program, "KS110", "model.pt2"),
    Case("torch-export-batch-beyond-range", DIGITS,
         metadata(lambda m: m["batching"].__setitem__("max_batch_size", 65)), "KS111", META,
         "$.inputs[0].shape[0]"),
    # declared tensors against the graph
    Case("input-not-in-model", IRIS, tensor("inputs", 0, "name", "features"),
         "KS201", META, "$.inputs[0].name"),
    Case("model-input-undeclared", IRIS, tensor("inputs", 0, "name", "features"),
         "KS202", META, "$.inputs"),
    Case("torchscript-arity", MLP,
         metadata(lambda m: m["inputs"].append({"name": "y", "datatype": "FP32", "shape": [-1, 2]})),
         "KS201", META, "$.inputs"),
    Case("output-datatype", IRIS, tensor("outputs", 0, "datatype", "INT32"), "KS203",
         META, "$.outputs[0].datatype"),
    Case("torchscript-output-datatype", MLP, tensor("outputs", 0, "datatype", "FP64"),
         "KS203", META, "$.outputs[0].datatype"),
    Case("torchscript-output-rank", MLP, tensor("outputs", 0, "shape", [-1]),
         "KS204", META, "$.outputs[0].shape"),
    Case("torchscript-output-dim", MLP, tensor("outputs", 0, "shape", [-1, 4]),
         "KS205", META, "$.outputs[0].shape[1]"),
    Case("rank", IRIS, tensor("inputs", 0, "shape", [-1, 4, 1]), "KS204",
         META, "$.inputs[0].shape"),
    Case("static-dim", IRIS, tensor("outputs", 1, "shape", [-1, 4]), "KS205",
         META, "$.outputs[1].shape[1]"),
    Case("dynamic-declared-static", IRIS,
         both(metadata(drop_batching), tensor("inputs", 0, "shape", [8, 4])),
         "KS206", META, "$.inputs[0].shape[0]"),
    Case("static-declared-dynamic", IRIS, tensor("inputs", 0, "shape", [-1, -1]),
         "KS207", META, "$.inputs[0].shape[1]"),
    # golden samples
    Case("no-samples", IRIS, remove("samples"), "KS301", "samples"),
    Case("sample-schema", IRIS, write(BROKEN, '{"request": {}}\n'), "KS302", BROKEN),
    Case("sample-not-json", IRIS, write(BROKEN, "{\n"), "KS302", BROKEN, "line"),
    Case("sample-expected-datatype", IRIS,
         sample(lambda s: s["expected"]["outputs"][1].__setitem__("datatype", "FP64")), "KS302",
         SAMPLE, "$.expected.outputs[1]"),
    Case("sample-wrong-datatype", IRIS,
         sample(lambda s: s["request"]["inputs"][0].__setitem__("datatype", "FP64")),
         "KS303", SAMPLE, "$.request"),
    Case("sample-inference-fails", RANKER,
         sample(lambda s: s["request"]["inputs"][1].__setitem__("data", [99, 2])), "KS304",
         SAMPLE, "$.request"),
    Case("sample-wrong-expected", IRIS,
         sample(lambda s: s["expected"]["outputs"][1]["data"].__setitem__(0, 0.5)), "KS305",
         SAMPLE, "$.expected.outputs[1].data[0]"),
    # artifact policy
    Case("size-cap", IRIS, small_size_cap, "KS401", "."),
    Case("forbidden-file", IRIS, write("weights.npy", b"\x93NUMPY\x01\x00v\x00"), "KS402", "weights.npy"),
    Case("pickle-os-system", IRIS, write("model.pkl", malicious_pickle()), "KS403", "model.pkl"),
    Case("protocol0-pickle-renamed", IRIS, write("vocab.txt", malicious_pickle(protocol=0)), "KS403",
         "vocab.txt"),
    Case("torchscript-member-os-system", MLP, evil_member_in_torchscript, "KS403", MEMBER),
    Case("pickle-unlisted-global", IRIS, write("vocab.dat", harmless_but_unlisted_pickle()), "KS404",
         "vocab.dat"),
    Case("torchscript-member-unlisted", MLP, unlisted_global_in_torchscript, "KS404", MEMBER),
    Case("symlink", IRIS, symlink, "KS405", "metadata-link.json"),
    Case("pickle-truncated", MLP, truncated_data_pkl, "KS406", DATA_PKL),
    Case("pickle-truncated-stray", IRIS, write("state.dat", truncated_pickle()), "KS402", "state.dat"),
    Case("documentation-binary", IRIS, write("README.md", b"\x89PNG\r\n\x1a\n\x00\x00"), "KS407",
         "README.md"),
    Case("sample-is-pickle", IRIS, write("samples/extra.json", malicious_pickle(0)), "KS403",
         "samples/extra.json"),
    Case("torchscript-extra-member", MLP, evil_member_in_torchscript, "KS408", MEMBER),
    Case("requirements-too-large", IRIS, requirements("# comment\n" * 8000), "KS409", REQ),
    Case("scan-budget", IRIS, slow_scan_budget, "KS410", "."),
    Case("torchscript-corrupt-archive", MLP, corrupt_archive_member, "KS406", "model.pt"),
    Case("hard-link", IRIS, hard_link_outside, "KS411", REQ),
    # dependency policy
    Case("requirement-unparsable", IRIS, requirements("six==1.16.0\nrequests==\n"), "KS501", REQ,
         "line 2"),
    Case("requirement-vcs", IRIS, requirements("git+https://github.com/psf/requests.git\n"), "KS502",
         REQ, "line 1"),
    Case("requirement-index-option", IRIS, requirements("--extra-index-url https://example.com/simple\n"),
         "KS502", REQ, "line 1"),
    Case("requirement-unpinned", IRIS, requirements("requests>=2\n"), "KS503", REQ, "line 1"),
    Case("requirement-arbitrary-equality", IRIS, requirements("# pinned?\nrequests===2.32.3\n"), "KS503",
         REQ, "line 2"),
    Case("requirement-wildcard", IRIS, requirements("requests==2.*\n"), "KS503", REQ, "line 1"),
    Case("requirement-level1", IRIS, requirements("torch==2.1.0\n"), "KS504", REQ, "line 1"),
    Case("requirement-denied", IRIS, requirements("tensorflow==2.15.0\n"), "KS505", REQ, "line 1"),
    Case("requirement-too-many", IRIS, requirements("".join(f"pkg{i}==1.0\n" for i in range(11))), "KS506",
         REQ),
    Case("requirement-duplicate", IRIS, requirements("six==1.16.0\nSix==1.16.0\n"), "KS507", REQ,
         "line 2"),
    Case("requirement-extras", IRIS, requirements("requests[socks]==2.32.3\n"), "KS508", REQ,
         "line 1"),
    # monitoring: the profile named by monitoring.profile (the iris example carries one)
    Case("profile-missing", IRIS, remove("profile.json"), "KS701", PROFILE),
    Case("profile-not-json", IRIS, write("profile.json", '{"profile_version": "1",'), "KS407", PROFILE),
    Case("profile-too-large", IRIS, small_profile_cap, "KS409", PROFILE),
    Case("profile-schema", IRIS, profile(set_field("profile_version", "2")), "KS703", PROFILE,
         "$.profile_version"),
    Case("profile-feature-missing", IRIS, profile(lambda p: p["features"].pop(2)), "KS704", PROFILE,
         "$.features"),
    Case("profile-feature-extra", IRIS, profile(lambda p: p["features"].append(
        {**p["features"][0], "name": "stem_length"})), "KS704", PROFILE, "$.features[4].name"),
    Case("profile-feature-moved", IRIS, profile(lambda p: p["features"][0]["source"].__setitem__("index", 1)),
         "KS705", PROFILE, "$.features[0].source"),
    Case("profile-output-unknown", IRIS, profile(lambda p: p["outputs"][0].__setitem__("name", "score")),
         "KS706", PROFILE, "$.outputs[0].name"),
    Case("profile-other-model", IRIS, profile(lambda p: p["model"].__setitem__("name", "other-model")),
         "KS707", PROFILE, "$.model.name"),
    Case("features-wrong-count", IRIS, tensor("inputs", 0, "features", ["a", "b", "c"]), "KS708", META,
         "$.inputs"),
    Case("monitoring-test-mismatch", IRIS, monitoring("tests", {"petal_length": "chi2"}), "KS709", META,
         "$.monitoring.tests.petal_length"),
    Case("monitoring-test-unknown-feature", IRIS, monitoring("tests", {"stem_length": "ks"}), "KS709", META,
         "$.monitoring.tests.stem_length"),
    Case("monitoring-expected-output", IRIS, monitoring("expected", {"accuracy": 0.9, "output": "nope"}),
         "KS710", META, "$.monitoring.expected.output"),
    # lineage
    Case("lineage-framework-minor", IRIS, metadata(set_field("lineage", {"environment": {
        "python": "3.11.9", "frameworks": {"onnxruntime": "0.9.0"}}})), "KS801", META,
         "$.lineage.environment.frameworks.onnxruntime"),
    Case("lineage-digest-source", IRIS, metadata(set_field("lineage", {"dataset": {
        "digest": "sha256:" + "0" * 64, "source": "dvc"}})), "KS802", META, "$.lineage.dataset.digest"),
    Case("lineage-dirty-code", IRIS, metadata(set_field("lineage", {"code": {
        "repository": "git@git.example.com:ds/iris.git", "commit": "0" * 40, "dirty": True}})), "KS803",
         META, "$.lineage.code.dirty"),
    # memory budget
    Case("memory-below-peak", IRIS, metadata(lambda m: m["resources"].update(memory="64Mi")), "KS841",
         META, "$.resources.memory"),
    Case("fails-at-max-batch", IRIS, _handler(
        "def preprocess(inputs):\n"
        "    if len(inputs['X']) > 2:\n"
        "        raise ValueError('this model only takes two rows')\n"
        "    return inputs\n"), "KS842", SAMPLE, "$.request"),
]


def _where(kernel: Path, relative: str) -> str:
    return str(kernel) if relative == "." else str(kernel / relative)


def _validate_without_torch(kernel: Path, interpreter: tuple[list[str], dict[str, str]]) -> list[Finding]:
    command, env = interpreter
    result = subprocess.run([*command, "validate", "--format", "json", str(kernel)], env=env,
                            cwd=kernel.parent, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return [Finding(**{k: v for k, v in f.items() if k not in ("title", "kernel")})
            for f in json.loads(result.stdout)["findings"]]


def run_case(case: Case, kernel_copy: Callable[[str], Path], tmp_path: Path,
             request: pytest.FixtureRequest) -> tuple[Path, list[Finding]]:
    kernel = kernel_copy(case.kernel)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    policy_dir = case.mutate(kernel, scratch)
    if case.without_torch:
        return kernel, _validate_without_torch(kernel, request.getfixturevalue("python_without_torch"))
    report = validate_kernel(kernel, policies=load_policies(policy_dir))
    return kernel, report.findings


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_kernel_reports_its_code(case: Case, kernel_copy, tmp_path: Path, request) -> None:
    kernel, findings = run_case(case, kernel_copy, tmp_path, request)
    matching = [f for f in findings if f.code == case.code]
    assert matching, f"expected {case.code}; got:\n" + "\n".join(f.render() for f in findings)
    expected_file = _where(kernel, case.file)
    located = [f for f in matching if f.file == expected_file and f.path.startswith(case.path)]
    assert located, (
        f"{case.code} not reported at {expected_file} {case.path!r}; got:\n"
        + "\n".join(f.render() for f in matching)
    )
    finding = located[0]
    assert finding.message and finding.fix, "every finding says what is wrong and how to fix it"
    assert CODES[finding.code] == finding.title


def test_table_covers_every_code() -> None:
    covered = {case.code for case in CASES}
    assert covered == set(CODES) - PLAN_GATE_CODES - PROFILE_CODES


def test_profile_codes_are_tested_by_the_profile_suite() -> None:
    text = (REPO / "tests" / "contract" / "test_profile.py").read_text(encoding="utf-8")
    missing = sorted(code for code in PROFILE_CODES if f'"{code}"' not in text)
    assert not missing, f"no test in tests/contract/test_profile.py checks {missing}"


def test_plan_gate_codes_are_tested_by_the_iac_suite() -> None:
    """KS6xx come from the Terraform plan gate; its tests live in tests/iac."""
    iac_tests = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests" / "iac").glob("test_*.py"))
    missing = sorted(code for code in PLAN_GATE_CODES if code not in iac_tests)
    assert not missing, f"no test in tests/iac mentions {missing}"


@pytest.mark.parametrize("kernel", [IRIS, MLP, RANKER, DIGITS])
def test_examples_are_clean(kernel: str) -> None:
    report = validate_kernel(REPO / "examples" / "kernels" / kernel)
    assert report.ok, "\n".join(f.render() for f in report.findings)
    assert report.samples_run >= 1


def test_dangerous_model_archive_is_never_loaded(kernel_copy, tmp_path: Path) -> None:
    """A TorchScript archive holding os.system is reported and not handed to torch.jit.load."""
    kernel = kernel_copy(MLP)
    evil_member_in_torchscript(kernel, tmp_path)
    report = validate_kernel(kernel)
    assert "KS403" in {f.code for f in report.findings}
    assert report.samples_run == 0


def test_all_findings_reported_at_once(kernel_copy) -> None:
    kernel = kernel_copy(IRIS)
    edit_json(kernel / "model_metadata.json", lambda m: m["outputs"][0].__setitem__("datatype", "INT32"))
    (kernel / "requirements.txt").write_text("requests>=2\ntorch==2.1.0\n")
    (kernel / "model.pkl").write_bytes(malicious_pickle())
    codes = {f.code for f in validate_kernel(kernel).findings}
    assert {"KS203", "KS503", "KS504", "KS402", "KS403"} <= codes
