"""The artifact gate rejects every hostile kernel of ``hostile_classes`` — by class of hole and by
placement — quickly, naming the file, running nothing and leaking nothing.

Each kernel is validated alone (``shim validate --format json --skip-samples KERNEL``, a few with
the golden samples) in its own process, with a 10 s limit, a few at a time. For every entry:

* exit code 1, no Python traceback, the kernel's report is not ok;
* a finding names the offending file (``<kernel>/<relative>``, or ``<kernel>/model.pt!<member>``
  for archive members; the archive path itself is accepted too) with one of the codes listed for
  the entry;
* the entry's marker file does not exist afterwards (its payload never ran);
* it took less than 10 s;
* stdout and stderr hold neither the canary environment variable set for the process nor a
  ``root:x:0:0`` line (links to /proc/self/environ and /etc/passwd were not read out).

The control tests at the end prove that every payload family really fires when a real consumer
loads it (pickle.loads, numpy, tarfile, libarchive, the import system), in a child process, so
that the "nothing ran" assertions can fail.
"""

from __future__ import annotations

import ctypes.util
import io
import json
import os
import pickletools
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security import hostile_classes as hc

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 10.0
#: Kernels validated at once (each in its own process); 2 on the 2-core CI machine.
WORKERS = max(1, min(4, os.cpu_count() or 1))
PASSWD_LINE = "root:x:0:0"


@dataclass
class Run:
    kernel: Path
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    timed_out: bool
    files: tuple[str, ...]  # relative names a finding may give for the offending file

    @property
    def report(self) -> dict | None:
        try:
            kernels = json.loads(self.stdout)["kernels"]
        except (ValueError, KeyError, TypeError):
            return None
        return kernels[0] if len(kernels) == 1 else None

    def describe(self) -> str:
        killed = " (killed at the time limit)" if self.timed_out else ""
        return (
            f"exit {self.returncode}, {self.elapsed:.1f}s{killed}"
            f"\n--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def validate(kernel: Path, skip_samples: bool, env: dict[str, str], files: tuple[str, ...]) -> Run:
    command = [sys.executable, "-m", "shim.cli.main", "validate", "--format", "json"]
    command += ["--skip-samples"] if skip_samples else []
    start = time.monotonic()
    process = subprocess.Popen(
        [*command, str(kernel)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=TIME_LIMIT_S)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the validator and anything it started
        out, err = process.communicate()
        timed_out = True
    elapsed = time.monotonic() - start
    return Run(kernel, None if timed_out else process.returncode, out.decode("utf-8", "replace"),
               err.decode("utf-8", "replace"), elapsed, timed_out, files)


class Gate:
    """Builds the corpus and validates it, once per entry; heavy entries one at a time on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.corpus, self.markers = root / "corpus", root / "markers"
        for directory in (self.corpus, self.markers, root / "outside"):
            directory.mkdir(parents=True)
        self.canary = f"kernelshim-canary-{uuid.uuid4().hex}"
        self.env = dict(os.environ)
        self.env.pop("KERNELSHIM_POLICY_DIR", None)
        self.env.update(KERNELSHIM_CANARY=self.canary, KERNELSHIM_CACHE_DIR=str(root / "cache"),
                        PYTHONDONTWRITEBYTECODE="1")
        self.runs: dict[str, Run] = {}

    def _run(self, entry: hc.GateEntry, files: tuple[str, ...]) -> Run:
        return validate(self.corpus / entry.name, entry.skip_samples, self.env, files)

    def run_light(self) -> None:
        light = [e for e in hc.ENTRIES if not e.heavy and e.name not in self.runs]
        names = {e.name: hc.build_entry(e, self.corpus, self.markers) for e in light}
        with ThreadPoolExecutor(WORKERS) as pool:
            for entry, run in zip(light, pool.map(lambda e: self._run(e, names[e.name]), light), strict=True):
                self.runs[entry.name] = run

    def run(self, entry: hc.GateEntry) -> Run:
        if entry.name not in self.runs:
            if entry.heavy:
                files = hc.build_entry(entry, self.corpus, self.markers)
                self.runs[entry.name] = self._run(entry, files)
                hc.remove_tree(self.corpus / entry.name)  # 100,000 files / big archives: free the disk
            else:
                self.run_light()
        return self.runs[entry.name]

    def marker(self, entry: hc.GateEntry) -> Path:
        return self.markers / entry.name


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    root = tmp_path_factory.mktemp("gate-classes")
    yield Gate(root)
    hc.remove_tree(root)  # the deep tree is deeper than shutil.rmtree can recurse


PARAMS = [
    pytest.param(e, id=e.name, marks=[pytest.mark.slow] if e.heavy else []) for e in hc.ENTRIES
]


def _relative(file: str, kernel: Path) -> str:
    for prefix in dict.fromkeys((str(kernel), str(kernel.resolve()), os.path.relpath(kernel, REPO))):
        if file == prefix:
            return "."
        if file.startswith(prefix + "/"):
            return file[len(prefix) + 1:]
    return file


def names_file(finding: dict, run: Run) -> bool:
    tail = _relative(finding.get("file") or "", run.kernel)
    return any(tail == name or tail.startswith((name + "!", name + "/")) for name in run.files)


@pytest.mark.parametrize("entry", PARAMS)
def test_rejected(gate: Gate, entry: hc.GateEntry) -> None:
    run = gate.run(entry)
    assert not run.timed_out, f"{entry.name}: no verdict within {TIME_LIMIT_S:.0f}s\n{run.describe()}"
    assert "Traceback" not in run.stderr, run.describe()
    assert run.returncode == 1, f"{entry.name} ({entry.what}) was not rejected: {run.describe()}"
    report = run.report
    assert report is not None, f"no JSON report for the kernel: {run.describe()}"
    assert not report["ok"], report


@pytest.mark.parametrize("entry", PARAMS)
def test_finding_names_the_file(gate: Gate, entry: hc.GateEntry) -> None:
    run = gate.run(entry)
    report = run.report
    assert report is not None, f"no JSON report for the kernel: {run.describe()}"
    naming = [f for f in report["findings"] if names_file(f, run)]
    assert naming, (
        f"{entry.name}: no finding names any of {run.files}: "
        f"{[(f['code'], _relative(f['file'], run.kernel)) for f in report['findings']]}"
    )
    codes = {f["code"] for f in naming}
    assert codes & entry.codes, (
        f"{entry.name}: findings on the file have codes {sorted(codes)}, "
        f"expected one of {sorted(entry.codes)}"
    )


@pytest.mark.parametrize("entry", PARAMS)
def test_nothing_ran(gate: Gate, entry: hc.GateEntry) -> None:
    gate.run(entry)
    assert not gate.marker(entry).exists(), f"{entry.name}: the payload ran during `shim validate`"


@pytest.mark.parametrize("entry", PARAMS)
def test_bounded_time(gate: Gate, entry: hc.GateEntry) -> None:
    run = gate.run(entry)
    assert not run.timed_out and run.elapsed < TIME_LIMIT_S, f"{entry.name}: {run.elapsed:.1f}s"


@pytest.mark.parametrize("entry", PARAMS)
def test_nothing_leaked(gate: Gate, entry: hc.GateEntry) -> None:
    run = gate.run(entry)
    output = run.stdout + run.stderr
    assert gate.canary not in output, f"{entry.name}: the process environment leaked into the report"
    assert PASSWD_LINE not in output, f"{entry.name}: /etc/passwd leaked into the report"


def test_no_marker_at_all(gate: Gate) -> None:
    gate.run_light()
    assert sorted(p.name for p in gate.markers.iterdir()) == [], "payloads ran during `shim validate`"


def test_corpus_covers_every_class_and_container_in_every_placement() -> None:
    assert len({e.name for e in hc.ENTRIES}) == len(hc.ENTRIES)
    present = {(e.klass, e.placement) for e in hc.ENTRIES}
    for klass in ("1", "2", "3", "4"):
        for placement in hc.PLACEMENT_KINDS:
            assert (klass, placement) in present, (klass, placement)
    containers = {(e.container, e.placement) for e in hc.ENTRIES if e.container}
    for container in hc.CONTAINER_FAMILIES:
        for placement in hc.PLACEMENT_KINDS:
            assert (container, placement) in containers, (container, placement)
    assert {e.klass for e in hc.ENTRIES} == {"1", "2", "3", "4", "5", "6"}
    assert any(not e.skip_samples and e.klass == "5" for e in hc.ENTRIES)
    assert sum(e.heavy for e in hc.ENTRIES) == 3


# -- controls: the payloads are live ------------------------------------------------------------------------

CONTROL_SCRIPT = r"""
import gzip, importlib, importlib.util, io, pickle, site, sys, tarfile, zipfile

kind, path = sys.argv[1], sys.argv[2]


def attempt(load, data):
    try:
        load(data)
    except Exception as exc:  # broken streams raise after the payload ran
        print(f"{kind}: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)


def load_all(data):
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        pickle.load(stream)


def zip_members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            inner = archive.read(name)
            if zipfile.is_zipfile(io.BytesIO(inner)):
                zip_members(inner)
            else:
                attempt(pickle.loads, inner)


def seven_zip(data):
    import ctypes, ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("archive"))
    lib.archive_read_new.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(lib.archive_read_new())
    lib.archive_read_support_format_all(handle)
    buffer = ctypes.create_string_buffer(data, len(data))
    assert lib.archive_read_open_memory(handle, buffer, ctypes.c_size_t(len(data))) == 0
    entry = ctypes.c_void_p()
    while lib.archive_read_next_header(handle, ctypes.byref(entry)) == 0:
        chunks, block = [], ctypes.create_string_buffer(1 << 16)
        while (count := lib.archive_read_data(handle, block, ctypes.c_size_t(1 << 16))) > 0:
            chunks.append(block.raw[:count])
        attempt(pickle.loads, b"".join(chunks))
    lib.archive_read_free(handle)


def tar(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            attempt(pickle.loads, archive.extractfile(member).read())


def numpy_load(path, archive):
    import numpy
    loaded = numpy.load(path, allow_pickle=True)
    if archive:
        [loaded[name] for name in loaded.files]


def import_handler(path):
    spec = importlib.util.spec_from_file_location("kernel_handler", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


if kind in ("loads", "load_all", "zip", "7z", "tar", "gzip"):
    data = open(path, "rb").read()
if kind == "loads":
    attempt(pickle.loads, data)
elif kind == "load_all":
    attempt(load_all, data)
elif kind == "zip":
    zip_members(data)
elif kind == "7z":
    seven_zip(data)
elif kind == "tar":
    tar(data)
elif kind == "gzip":
    attempt(pickle.loads, gzip.decompress(data))
elif kind in ("npy", "npz"):
    attempt(lambda p: numpy_load(p, kind == "npz"), path)
elif kind == "import-handler":
    attempt(import_handler, path)
elif kind == "import-module":
    directory, _, module = path.rpartition("/")
    sys.path.insert(0, directory)
    attempt(importlib.import_module, module)
elif kind == "addsitedir":
    site.addsitedir(path)
else:
    raise SystemExit(f"unknown control {kind}")
"""


def _control(tmp_path: Path, kind: str, target: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-c", CONTROL_SCRIPT, kind, str(target)], cwd=tmp_path, timeout=120,
        capture_output=True, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
    )


FAMILIES = [*hc.PICKLE_FAMILIES.values(), *hc.CONTAINER_FAMILIES.values()]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_payload_family_fires(tmp_path: Path, family: hc.Family) -> None:
    """Control: a real load of the payload creates its marker."""
    if family.loader == "7z" and ctypes.util.find_library("archive") is None:
        pytest.skip("libarchive is not installed: no independent 7z reader")
    if family.needs_torch:
        pytest.importorskip("torch")
    marker = tmp_path / "marker"
    payload = tmp_path / f"payload.{family.loader}"
    payload.write_bytes(family.build(marker))
    _control(tmp_path, family.loader, payload)
    assert marker.exists(), f"{family.name}: the payload did not fire when loaded ({family.loader})"


def test_bomb_payload_fires(tmp_path: Path) -> None:
    """Control for the decompression bomb: the same builder with 1,000 NONE/POP pairs."""
    marker = tmp_path / "marker"
    (tmp_path / "bomb.zip").write_bytes(hc.bomb_zip(marker, pairs=1000))
    _control(tmp_path, "zip", tmp_path / "bomb.zip")
    assert marker.exists()


def test_payloads_survive_their_placement(tmp_path: Path) -> None:
    """Control: with a payload appended to its data.pkl, model.pt still loads in torch (so a gate that
    lets it through sees a working model) and the appended pickle fires when loaded."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "marker"
    member = hc.torchscript_with(tmp_path / "kernel", "data.pkl+", hc.sg_pop_decoys(marker))
    module = torch.jit.load(str(tmp_path / "kernel" / "model.pt"))  # torch's own unpickler stops at STOP
    assert module(torch.zeros(1, 8)).shape == (1, 3)
    assert not marker.exists()
    with zipfile.ZipFile(tmp_path / "kernel" / "model.pt") as archive:
        data = archive.read(member.split("!", 1)[1])
    stream = io.BytesIO(data)
    for _ in pickletools.genops(stream):  # the disassembler stops at the first pickle's STOP
        pass
    (tmp_path / "second.pkl").write_bytes(data[stream.tell():])
    _control(tmp_path, "loads", tmp_path / "second.pkl")
    assert marker.exists()


@pytest.mark.parametrize("name", sorted(hc.CODE_CONTROLS))
def test_code_payload_fires(tmp_path: Path, name: str) -> None:
    """Control: the kernel's hidden code runs when Python imports or starts up the way it would."""
    entry = next(e for e in hc.ENTRIES if e.name == name)
    kernel, marker = tmp_path / "kernel", tmp_path / "marker"
    entry.build(kernel, marker)
    kind, target = hc.CODE_CONTROLS[name]
    if kind == "site-startup":
        env = {**os.environ, "PYTHONPATH": str(kernel), "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run([sys.executable, "-c", "pass"], cwd=tmp_path, timeout=60, check=True,
                       capture_output=True, env=env)
    else:
        _control(tmp_path, kind, kernel / target if target else kernel)
    assert marker.exists(), f"{name}: the hidden code did not run ({kind})"
