"""Clean TorchScript kernels: real, varied models that `shim validate` must accept without a finding.

The counterpart of test_hostile_kernels.py. A validator that rejects hostile archives must not do
so by rejecting ordinary ones: quantized weights, tied or strided parameters, dict outputs, frozen
constants, scripted control flow. The corpus is built by tests/security/clean_models.py.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests.security.clean_models import CATALOG, build_clean_torchscript_corpus
from tests.security.conftest import REPO, SHIM

KERNEL_FILES = {"model.pt", "model_metadata.json", "samples/example.json"}
RNN_CLASS = re.compile(r"\.rnn\.(?:___torch_mangle_\d+\.)?(?:LSTM|GRU|RNN)$")
DICT_FORWARD = re.compile(r"def forward\([^)]*\)\s*->\s*Dict\[str, Tensor\]")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_clean_torchscript_corpus(tmp_path_factory.mktemp("clean-torchscript"))


#: `shim validate` processes run side by side, each on its share of the corpus (CI has 2 cores;
#: one process for all 47 kernels took ~140 s of CI's 30 minutes)
VALIDATE_PROCESSES = 2


@pytest.fixture(scope="module")
def validation(corpus: list[Path]) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    """All kernels through `shim validate`, split over a few subprocesses; their outputs combined."""
    shares = [corpus[i::VALIDATE_PROCESSES] for i in range(VALIDATE_PROCESSES)]
    processes = [
        subprocess.Popen(
            [*SHIM, "validate", "--format", "json", *(str(k) for k in share)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for share in shares
        if share
    ]
    combined = subprocess.CompletedProcess(args=["shim", "validate"], returncode=0, stdout="", stderr="")
    kernels: dict[str, dict] = {}
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        combined.returncode = max(combined.returncode, process.returncode)
        combined.stdout += stdout
        combined.stderr += stderr
        try:
            report = json.loads(stdout)
        except json.JSONDecodeError:
            pytest.fail(
                f"`shim validate` printed no JSON report (exit {process.returncode}):\n"
                f"{stdout[-3000:]}\n{stderr[-5000:]}"
            )
        kernels.update({Path(k["kernel"]).name: k for k in report["kernels"]})
    return combined, kernels


def _archive_members(kernel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(kernel / "model.pt") as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def _data_pkl_globals(members: dict[str, bytes]) -> set[str]:
    """``module.name`` of every GLOBAL in the archive's data.pkl (disassembled, never unpickled)."""
    data = next(v for k, v in members.items() if k.endswith("/data.pkl") and k.count("/") == 1)
    return {
        str(arg).replace(" ", ".", 1)
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data))
        if opcode.name == "GLOBAL"
    }


def test_corpus_is_complete_and_well_formed(corpus: list[Path]) -> None:
    assert len(corpus) >= 30
    assert [k.name for k in corpus] == [e.name for e in CATALOG]
    for kernel in corpus:
        files = {p.relative_to(kernel).as_posix() for p in kernel.rglob("*") if p.is_file()}
        assert files == KERNEL_FILES, f"{kernel.name}: {sorted(files)}"
        assert (kernel / "model.pt").stat().st_size < 2 * 1024 * 1024, kernel.name


def test_every_clean_kernel_validates(
    corpus: list[Path], validation: tuple[subprocess.CompletedProcess[str], dict[str, dict]]
) -> None:
    result, reports = validation
    assert "Traceback" not in result.stderr, result.stderr[-5000:]
    assert sorted(reports) == sorted(k.name for k in corpus)
    lines = []
    for name, report in sorted(reports.items()):
        if report["ok"] and not report["findings"]:
            continue
        lines.append(f"{name}: ok={report['ok']}, {len(report['findings'])} finding(s)")
        for f in report["findings"]:
            where = f" {f['path']}" if f.get("path") else ""
            lines.append(f"    {f['code']} {f['file']}{where}: {f['message']}")
    rejected = sum(1 for r in reports.values() if not r["ok"] or r["findings"])
    assert not lines, f"{rejected} of {len(reports)} clean kernels were not accepted:\n" + "\n".join(lines)
    for name, report in reports.items():
        if "samples_run" in report:
            assert report["samples_run"] == 1, f"{name}: its golden sample did not run"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_corpus_is_varied(corpus: list[Path]) -> None:
    quantized, dict_outputs, rnns, traced, frozen = [], [], [], [], []
    datatypes: set[str] = set()
    for kernel in corpus:
        members = _archive_members(kernel)
        pickled = _data_pkl_globals(members)
        if "torch._utils._rebuild_qtensor" in pickled:
            quantized.append(kernel.name)
        if any(RNN_CLASS.search(name) for name in pickled):
            rnns.append(kernel.name)
        code = "\n".join(
            v.decode("utf-8") for k, v in members.items() if "/code/" in k and k.endswith(".py")
        )
        if DICT_FORWARD.search(code):
            dict_outputs.append(kernel.name)
        if any(k.endswith("constants.pkl") and len(v) > 64 for k, v in members.items()):
            frozen.append(kernel.name)  # torch.jit.freeze stores the weights as constants
        metadata = json.loads((kernel / "model_metadata.json").read_text())
        if "torch.jit.trace" in metadata["description"]:
            assert kernel.name.startswith("traced-"), kernel.name
            traced.append(kernel.name)
        datatypes |= {t["datatype"] for t in metadata["inputs"] + metadata["outputs"]}
    assert quantized, "no archive references torch._utils._rebuild_qtensor"
    assert dict_outputs, "no model returns Dict[str, Tensor]"
    assert rnns, "no LSTM/GRU/RNN"
    assert traced, "no traced model"
    assert frozen, "no frozen model"
    assert {"FP16", "FP32", "FP64", "INT32", "INT64", "UINT8", "BOOL"} <= datatypes, sorted(datatypes)
