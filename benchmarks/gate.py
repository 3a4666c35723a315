"""Artifact-gate timings on a large clean TorchScript archive (default 1 GiB of weights).

Measured in one run, as ratios against the limits that matter:

- the whole gate (layout, every pickle through the restricted unpickler, every storage read and
  CRC-checked) in the sandboxed child, as ``shim validate`` runs it, against reading the same
  archive's members with ``zipfile`` alone (the in-process I/O + CRC limit), in MB/s of
  pickle-free weight data (target: at least 200 MB/s);
- pickles through the restricted unpickler: a data.pkl-shaped stream of 200,000 tensors against
  ``pickletools.genops`` (the old scanner's disassembler), and plain data against ``pickle.loads``
  (the unpickler itself: the ratio shows the restriction costs nothing); ``torch.jit.load`` of the
  whole archive for scale.

    python -m benchmarks.gate [--gib 1.0]
"""

from __future__ import annotations

import argparse
import json
import pickle
import pickletools
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "examples" / "kernels" / "torchscript-mlp"


def big_torchscript_kernel(work: Path, gib: float) -> Path:
    """A kernel whose model.pt holds ``gib`` GiB of float32 weights in 64 MiB parameters (reused)."""
    import torch
    from torch import nn

    chunk = 16 * 2**20  # elements: 64 MiB per parameter
    count = max(1, round(gib * 2**30 / (chunk * 4)))
    kernel = work / "kernels" / f"big-torchscript-{count}x64MiB"
    if (kernel / "model.pt").is_file():
        return kernel

    class Wide(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            self.blocks = nn.ParameterList(
                [
                    nn.Parameter(torch.randn(chunk // 1024, 1024, generator=generator) * 0.01)
                    for _ in range(count)
                ]
            )
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.head(x), dim=-1)

    if kernel.exists():
        shutil.rmtree(kernel)
    shutil.copytree(TEMPLATE, kernel)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Wide().eval()), str(kernel / "model.pt"))
    metadata = json.loads((kernel / "model_metadata.json").read_text())
    metadata.update(name="big-torchscript", description="Generated large TorchScript model for gate timings.")
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    shutil.rmtree(kernel / "samples")  # the gate needs none; validate would need regenerated ones
    (kernel / "samples").mkdir()
    return kernel


def synthetic_data_pkl(tensors: int) -> bytes:
    """A data.pkl-shaped stream (protocol 2, as the TorchScript pickler writes): a list of
    ``tensors`` tensors, each ``_rebuild_tensor_v2`` of a persistent-id storage. Large enough to
    time the parse, which the real archive's few-kilobyte pickles are not."""
    parts = [
        b"\x80\x02](",
    ]
    for index in range(tensors):
        key = str(index).encode()
        parts.append(
            b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            + b"X"
            + len(key).to_bytes(4, "little")
            + key
            + b"X\x03\x00\x00\x00cpuK\x10tQ"
            + b"K\x00K\x04K\x04\x86K\x04K\x01\x86\x89ccollections\nOrderedDict\n)RtR"
        )
    parts.append(b"e.")
    return b"".join(parts)


def _best(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def _read_members(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as handle:
                while handle.read(8 * 2**20):
                    pass


def run_all(work: Path, gib: float, log: Callable[[str], None] = print, repeat: int = 3) -> dict[str, Any]:
    from shim.policy.gate import Declaration, check_artifacts
    from shim.policy.loader import load_policies
    from shim.policy.restricted_pickle import inspect_pickle, rules_for

    log(f"gate: building a {gib:g} GiB TorchScript kernel")
    kernel = big_torchscript_kernel(work, gib)
    model = kernel / "model.pt"
    policy = load_policies().artifact
    declaration = Declaration("model.pt", "torchscript", None)
    with zipfile.ZipFile(model) as archive:
        infos = archive.infolist()
        pickles = {
            i.filename: archive.read(i)
            for i in infos
            if i.filename.endswith(("data.pkl", "debug_pkl", "constants.pkl"))
        }
    weight_bytes = sum(i.file_size for i in infos if "/data/" in i.filename)
    pickle_bytes = sum(len(d) for d in pickles.values())

    findings: list[Any] = []

    def gate() -> None:
        findings[:] = check_artifacts(kernel, policy, declaration).findings

    log("gate: timing")
    _read_members(model)  # warm the page cache once, so every figure below reads from memory
    gate_s = _best(gate, repeat)
    assert not findings, [f.render() for f in findings]
    read_s = _best(lambda: _read_members(model), repeat)
    rules = rules_for(policy, storages=True, torch_classes=True)
    tensor_stream = synthetic_data_pkl(200_000)
    plain = pickle.dumps([{"id": i, "w": [0.5, 1.5], "tag": "x" * 8} for i in range(300_000)], protocol=4)
    restricted_s = _best(lambda: inspect_pickle(tensor_stream, rules), repeat)
    disassembler_s = _best(lambda: sum(1 for _ in pickletools.genops(tensor_stream)), repeat)
    plain_restricted_s = _best(lambda: inspect_pickle(plain, rules), repeat)
    plain_loads_s = _best(lambda: pickle.loads(plain), repeat)
    import torch

    torch_s = _best(lambda: torch.jit.load(str(model)), max(1, repeat - 1))
    mb = 1e6
    return {
        "archive_bytes": model.stat().st_size,
        "weight_bytes": weight_bytes,
        "pickle_bytes": pickle_bytes,
        "gate_seconds": round(gate_s, 3),
        "gate_weight_MBps": round(weight_bytes / mb / gate_s, 1),
        "zipfile_read_seconds": round(read_s, 3),
        "zipfile_read_MBps": round(weight_bytes / mb / read_s, 1),
        "gate_vs_read_ratio": round(read_s / gate_s, 3),
        "torch_jit_load_seconds": round(torch_s, 3),
        "tensor_pickle_bytes": len(tensor_stream),
        "restricted_unpickler_MBps": round(len(tensor_stream) / mb / restricted_s, 1),
        "restricted_tensors_per_s": round(200_000 / restricted_s),
        "pickletools_genops_MBps": round(len(tensor_stream) / mb / disassembler_s, 1),
        "restricted_vs_genops_speedup": round(disassembler_s / restricted_s, 2),
        "plain_pickle_bytes": len(plain),
        "plain_restricted_MBps": round(len(plain) / mb / plain_restricted_s, 1),
        "plain_pickle_loads_MBps": round(len(plain) / mb / plain_loads_s, 1),
        "restricted_vs_pickle_loads_ratio": round(plain_loads_s / plain_restricted_s, 3),
        "target_200MBps_met": weight_bytes / mb / gate_s >= 200,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gate", description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "work")
    args = parser.parse_args(argv)
    results = run_all(args.work, args.gib, lambda m: print(m, file=sys.stderr))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
