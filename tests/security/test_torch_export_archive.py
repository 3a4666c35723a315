"""Hostile torch.export archives (model.pt2): each is refused by the artifact gate with a specific
finding, and none is handed to torch.export.load.

Every archive starts as a real ``torch.export.save`` output (the example kernel's, and fresh ones
from varied models), then one thing is changed: an extra member, a pickle that calls os.system
(as a stray member, and inside the sample inputs that torch.export.load unpickles), a nested zip,
a member whose path leaves the archive folder, a program JSON that is not JSON, a weight stored
as a pickle, truncated weights, bytes before or after the zip.
"""

from __future__ import annotations

import fnmatch
import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch")

from shim.contract.validator import validate_kernel
from shim.policy.loader import load_policies
from shim.policy.torch_export_archive import check_torch_export_archive
from tests.kernel_fixtures import harmless_but_unlisted_pickle, malicious_pickle
from tests.security.conftest import REPO

EXAMPLE = REPO / "examples" / "kernels" / "torch-export-digits"
ROOT = "model/"


def _gate(path: Path) -> list:
    """The archive check as the gate runs it, with the shipped policy's allow- and danger-lists."""
    policy = load_policies().artifact
    patterns = policy.get("dangerous_pickle_globals") or []
    return check_torch_export_archive(
        str(path), "model.pt2", policy, lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _write(path: Path, members: dict[str, bytes], compress: dict[str, int] | None = None) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data, compress_type=(compress or {}).get(name, zipfile.ZIP_STORED))


def _rewrite(path: Path, change: Callable[[dict[str, bytes]], object]) -> None:
    members = _members(path)
    change(members)
    _write(path, members)


def _nested_save(members: dict[str, bytes], pickled: bytes) -> None:
    """Replace data.pkl inside the nested torch.save archive of sample inputs."""
    name = ROOT + "data/sample_inputs/model.pt"
    inner = _members_of_bytes(members[name])
    key = next(k for k in inner if k.endswith("/data.pkl"))
    inner[key] = pickled
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member, data in inner.items():
            archive.writestr(member, data)
    members[name] = buffer.getvalue()


def _members_of_bytes(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _graph(change: Callable[[dict], object]) -> Callable[[dict[str, bytes]], None]:
    def apply(members: dict[str, bytes]) -> None:
        program = json.loads(members[ROOT + "models/model.json"])
        change(program)
        members[ROOT + "models/model.json"] = json.dumps(program).encode()

    return apply


def _weights_config(change: Callable[[dict], object]) -> Callable[[dict[str, bytes]], None]:
    def apply(members: dict[str, bytes]) -> None:
        name = ROOT + "data/weights/model_weights_config.json"
        config = json.loads(members[name])
        change(config)
        members[name] = json.dumps(config).encode()

    return apply


def _first_weight(config: dict) -> dict:
    return next(iter(config["config"].values()))


def _nested_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner/payload.pkl", malicious_pickle())
    return buffer.getvalue()


HOSTILE: dict[str, tuple[Callable[[dict[str, bytes]], object], set[str], str]] = {
    # id: (change, codes of which at least one is expected, text the finding names)
    "extra-member": (
        lambda m: m.__setitem__(ROOT + "extra/notes.txt", b"hello"),
        {"KS408"},
        "extra/notes.txt",
    ),
    "pickle-os-system-member": (
        lambda m: m.__setitem__(ROOT + "data/weights/helper.pkl", malicious_pickle()),
        {"KS403"},
        "system",
    ),
    "pickle-os-system-as-weight": (
        lambda m: m.__setitem__(ROOT + "data/weights/weight_0", malicious_pickle() + bytes(4096)),
        {"KS408"},
        "pickle",
    ),
    "pickle-os-system-in-sample-inputs": (
        lambda m: _nested_save(m, malicious_pickle(protocol=2)),
        {"KS403"},
        "system",
    ),
    "unlisted-global-in-sample-inputs": (
        lambda m: _nested_save(m, harmless_but_unlisted_pickle()),
        {"KS404"},
        "datetime",
    ),
    "nested-zip": (
        lambda m: m.__setitem__(ROOT + "data/aotinductor/model.zip", _nested_zip()),
        {"KS408"},
        "nested zip",
    ),
    "aoti-native-code": (
        lambda m: m.__setitem__(
            ROOT + "data/aotinductor/model/abc.wrapper.so", b"\x7fELF\x02\x01\x01" + bytes(64)
        ),
        {"KS408"},
        "AOTInductor package",
    ),
    "path-traversal": (
        lambda m: m.__setitem__(ROOT + "../../etc/cron.d/evil", b"* * * * * root id\n"),
        {"KS408"},
        "cron.d",
    ),
    "absolute-path": (lambda m: m.__setitem__("/etc/evil", b"x"), {"KS408"}, "one top-level folder"),
    "graph-not-json": (
        lambda m: m.__setitem__(ROOT + "models/model.json", b"{'graph_module': None,}"),
        {"KS407"},
        "not strict JSON",
    ),
    "graph-nan": (
        lambda m: m.__setitem__(ROOT + "models/model.json", b'{"graph_module": NaN}'),
        {"KS407"},
        "not strict JSON",
    ),
    "graph-too-deep": (
        lambda m: m.__setitem__(ROOT + "models/model.json", b'{"a":' * 200 + b"1" + b"}" * 200),
        {"KS407"},
        "not strict JSON",
    ),
    "graph-missing": (lambda m: m.pop(ROOT + "models/model.json"), {"KS408"}, "models/model.json"),
    "second-model": (
        lambda m: m.__setitem__(ROOT + "models/other.json", m[ROOT + "models/model.json"]),
        {"KS408"},
        "models/other.json",
    ),
    "weight-as-pickle": (
        _weights_config(lambda c: _first_weight(c).__setitem__("use_pickle", True)),
        {"KS408"},
        "weights_only=False",
    ),
    "weight-truncated": (
        lambda m: m.__setitem__(ROOT + "data/weights/weight_0", b"\0" * 8),
        {"KS408"},
        "config entries read",
    ),
    "weight-unreferenced": (
        lambda m: m.__setitem__(ROOT + "data/weights/weight_99", b"\0" * 8),
        {"KS408"},
        "no config entry",
    ),
    "weight-file-escapes": (
        _weights_config(lambda c: _first_weight(c).__setitem__("path_name", "../../models/model.json")),
        {"KS407"},
        "names file",
    ),
    "archive-format-lies": (
        lambda m: m.__setitem__(ROOT + "archive_format", b"pt2\nimport os"),
        {"KS408"},
        "archive_format",
    ),
    "legacy-pickled-weights": (
        lambda m: m.__setitem__(ROOT + "data/weights/model.pt", malicious_pickle()),
        {"KS403"},
        "system",
    ),
}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    target = tmp_path / "model.pt2"
    shutil.copyfile(EXAMPLE / "model.pt2", target)
    return target


def test_the_example_archive_is_clean(archive: Path) -> None:
    assert _gate(archive) == []


def test_a_rewritten_archive_is_still_clean(archive: Path) -> None:
    """The test helpers rewrite archives with Python's zipfile; unchanged, that must stay clean,
    so every finding below comes from the one change, not from the rewrite."""
    _rewrite(archive, lambda _m: None)
    assert _gate(archive) == []


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(case: str, archive: Path) -> None:
    change, codes, text = HOSTILE[case]
    _rewrite(archive, change)
    findings = _gate(archive)
    assert {f.code for f in findings} & codes, [f.render() for f in findings]
    assert any(text in f.message or text in f.file for f in findings), [f.render() for f in findings]


@pytest.mark.parametrize("where", ["prepended", "appended"])
def test_bytes_outside_the_zip_are_refused(where: str, archive: Path) -> None:
    data = archive.read_bytes()
    archive.write_bytes(malicious_pickle() + data if where == "prepended" else data + malicious_pickle())
    findings = _gate(archive)
    assert {f.code for f in findings} & {"KS408", "KS406"}, [f.render() for f in findings]


def test_compressed_weights_are_refused(archive: Path) -> None:
    members = _members(archive)
    _write(archive, members, {ROOT + "data/weights/weight_0": zipfile.ZIP_DEFLATED})
    assert any("compressed" in f.message for f in _gate(archive))


def test_hostile_kernel_is_refused_by_validate_and_never_loaded(tmp_path: Path) -> None:
    """Through the whole validator: the gate refuses it, so no model run (no torch.export.load)."""
    kernel = tmp_path / "kernel"
    shutil.copytree(EXAMPLE, kernel)
    _rewrite(kernel / "model.pt2", lambda m: _nested_save(m, malicious_pickle(protocol=2)))
    report = validate_kernel(kernel)
    assert "KS403" in {f.code for f in report.findings}
    assert any(
        f.file.endswith("model.pt2!model/data/sample_inputs/model.pt!archive/data.pkl")
        for f in report.findings
    ), [f.render() for f in report.findings]
    assert report.samples_run == 0


def test_a_pt2_under_broken_metadata_is_still_checked_as_torch_export(tmp_path: Path) -> None:
    """With metadata too broken to name the framework, a .pt2 is checked with torch.export's layout."""
    kernel = tmp_path / "kernel"
    shutil.copytree(EXAMPLE, kernel)
    (kernel / "model_metadata.json").write_text('{"model_file": "model.pt2", "framework": 3')
    _rewrite(kernel / "model.pt2", lambda m: m.__setitem__(ROOT + "extra/x.pkl", malicious_pickle()))
    codes = {f.code for f in validate_kernel(kernel).findings}
    assert "KS403" in codes and "KS003" in codes
