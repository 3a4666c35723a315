"""The attacker's second pass over the artifact gate (``attack_kernels``): every kernel is refused
through the real CLI (``shim validate`` or the ``shim hook`` entry point) in its own process.

For every attack: exit code 1, no traceback, a finding naming the offending file with one of the
listed codes, no marker file (the payload never ran), under 10 s, and neither the canary
environment variable nor the attack's secret (content of a file outside the kernel) in stdout or
stderr. The symbolic link to /proc/self/environ is checked in every output format (text, json,
github, JUnit). The sandboxed golden-sample run reaches no network where the OS allows a network
namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security import attack_kernels as ak
from tests.security import hostile_classes as hc
from tests.security.build_corpus import ONNX_BASE

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("gate-attacks")
    (root / "markers").mkdir()
    (root / "kernels").mkdir()
    subprocess.run(["git", "init", "-q", str(root / "kernels")], check=True)  # hooks stop at the repo
    yield root
    hc.remove_tree(root)


def _environment(root: Path, canary: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KERNELSHIM_POLICY_DIR", None)
    env.update(KERNELSHIM_CANARY=canary, GITHUB_TOKEN=canary, KERNELSHIM_CACHE_DIR=str(root / "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    return env


def shim(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int | None, str, float]:
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "shim.cli.main", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=TIME_LIMIT_S * 3)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        code = None
    return code, out.decode("utf-8", "replace"), time.monotonic() - start


def _finding_files(output: str) -> list[tuple[str, str]]:
    """(code, file) of every finding in JSON output, or of every KSnnn line in text output."""
    try:
        return [(f["code"], f["file"]) for k in json.loads(output)["kernels"] for f in k["findings"]]
    except (ValueError, KeyError, TypeError):
        found = []
        for line in output.splitlines():
            head, _, rest = line.partition(": KS")
            if rest[:3].isdigit():
                found.append(("KS" + rest[:3], head))
        return found


@pytest.mark.parametrize("attack", [a for a in ak.ATTACKS if not a.heavy], ids=lambda a: a.name)
def test_attack_is_refused(attack: ak.Attack, workspace: Path) -> None:
    _refused(attack, workspace)


@pytest.mark.slow
@pytest.mark.parametrize("attack", [a for a in ak.ATTACKS if a.heavy], ids=lambda a: a.name)
def test_heavy_attack_is_refused(attack: ak.Attack, workspace: Path) -> None:
    _refused(attack, workspace)


def _refused(attack: ak.Attack, workspace: Path) -> None:
    kernels = workspace / "kernels"
    kernel, marker = kernels / attack.name, workspace / "markers" / attack.name
    attack.build(kernel, marker)
    canary = f"kernelshim-canary-{uuid.uuid4().hex}"
    args = [str(kernel) if a == "KERNEL" else str(kernel / "model_metadata.json") if a == "METADATA" else a
            for a in attack.command]
    try:
        code, output, elapsed = shim(args, kernels, _environment(workspace, canary))
    finally:
        hc.remove_tree(kernel) if attack.heavy else None
    assert code == 1, f"{attack.name}: exit {code}\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert elapsed < TIME_LIMIT_S, f"{attack.name} took {elapsed:.1f} s"
    assert not marker.exists(), f"{attack.name}: the payload ran"
    assert canary not in output
    if attack.secret:
        assert attack.secret not in output, f"{attack.name}: content from outside the kernel was echoed"
    wanted = {str(kernel) if f == "." else str(kernel / f) for f in attack.files}
    findings = [(c, f if f.startswith("/") else str(kernels / f)) for c, f in _finding_files(output)]
    assert any(c in attack.codes and (f in wanted or f.startswith(tuple(w + "!" for w in wanted)))
               for c, f in findings), f"{attack.name}: no {sorted(attack.codes)} finding names " \
        f"{sorted(wanted)}; got {findings}\n{output[-3000:]}"


# -- a symbolic link to /proc/self/environ, every output format ------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "json", "github", "junit"])
def test_environ_link_leaks_nothing_in_any_format(fmt: str, workspace: Path) -> None:
    kernel = workspace / "kernels" / f"environ-{fmt}"
    hc._copy(ONNX_BASE, kernel)
    for relative in ("requirements.txt", "README.md", "samples/extra.json"):
        (kernel / relative).symlink_to("/proc/self/environ")
    canary = f"kernelshim-canary-{uuid.uuid4().hex}"
    junit = workspace / f"junit-{fmt}.xml"
    args = ["validate", "--junit", str(junit)] if fmt == "junit" else ["validate", "--format", fmt]
    code, output, elapsed = shim([*args, str(kernel)], workspace, _environment(workspace, canary))
    written = junit.read_text() if fmt == "junit" else ""
    assert code == 1 and "Traceback" not in output, output
    assert canary not in output + written
    assert "KS405" in output + written and "requirements.txt" in output + written
    assert elapsed < TIME_LIMIT_S


# -- the sandboxed sample run has no network ------------------------------------------------------------

def _network_namespaces_allowed() -> bool:
    from shim.sandbox import isolate_network

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if isolate_network() else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_handler_reaches_no_network_at_import(workspace: Path) -> None:
    if not _network_namespaces_allowed():
        pytest.skip("this host allows no network namespace (documented in SECURITY.md)")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    kernel = workspace / "kernels" / "handler-network"
    hc._copy(ONNX_BASE, kernel)
    hc._with_metadata(kernel, lambda m: m.update(preprocessing={"handler": "handler.py"}))
    (kernel / "handler.py").write_text(
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\n"
        "except OSError:\n"
        "    pass\n\n\n"
        "def preprocess(inputs):\n    return inputs\n"
    )
    code, output, _ = shim(["validate", "--format", "json", str(kernel)], workspace,
                           _environment(workspace, "unused"))
    try:
        connection, _ = listener.accept()
        connection.close()
        connected = True
    except TimeoutError:
        connected = False
    finally:
        listener.close()
    assert code == 0, output  # the handler runs (its samples pass), isolated
    assert not connected, "the handler reached a socket on the host's loopback"


# -- the sandboxed sample run writes nothing outside its private directory ----------------------------

def _mount_namespaces_allowed() -> bool:
    import tempfile

    from shim.sandbox import isolate_filesystem

    home = tempfile.mkdtemp(prefix="kernelshim-probe-")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if isolate_filesystem(home) else 1)
    _, status = os.waitpid(pid, 0)
    os.rmdir(home)
    return os.waitstatus_to_exitcode(status) == 0


FROM_FILE_MODEL = '''
import sys
import torch


class Planting(torch.nn.Module):
    """The example MLP, whose forward first maps MARKER with shared=True: torch creates the file."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        planted = torch.from_file(MARKER, True, 4, dtype=torch.uint8)
        planted.fill_(65)
        return self.inner(x) + 0.0 * planted.sum()


torch.jit.save(torch.jit.script(Planting(torch.jit.load(sys.argv[1]))), sys.argv[2])
'''


def test_torchscript_code_cannot_write_files_during_the_sample_run(workspace: Path) -> None:
    """TorchScript source (code/ in the archive) is compiled by torch, not Python, yet can create
    files: ``torch.from_file(path, shared=True)``. The sample run's file system is read-only."""
    if not _mount_namespaces_allowed():
        pytest.skip("this host allows no mount namespace (documented in SECURITY.md)")
    kernel = workspace / "kernels" / "torchscript-from-file"
    marker = workspace / "markers" / "torchscript-from-file"
    hc._copy(hc.TORCHSCRIPT_BASE, kernel)
    builder = workspace / "planting_model.py"
    builder.write_text(FROM_FILE_MODEL.replace("MARKER", repr(str(marker))))
    original = hc.TORCHSCRIPT_BASE / "model.pt"
    subprocess.run([sys.executable, str(builder), str(original), str(kernel / "model.pt")],
                   check=True, capture_output=True, timeout=300)
    code, output, _ = shim(["validate", "--format", "json", str(kernel)], workspace,
                           _environment(workspace, "unused"))
    assert "Traceback (most recent call last)" not in output, output  # torch's own error text may quote
    assert not marker.exists(), "TorchScript code created a file outside the sandbox's private directory"
    assert code == 1 and "KS304" in output, output  # the sample fails: the write was refused


def test_handler_cannot_write_files_outside_its_private_directory(workspace: Path) -> None:
    if not _mount_namespaces_allowed():
        pytest.skip("this host allows no mount namespace (documented in SECURITY.md)")
    kernel = workspace / "kernels" / "handler-writes"
    marker = workspace / "markers" / "handler-writes"
    hc._copy(ONNX_BASE, kernel)
    hc._with_metadata(kernel, lambda m: m.update(preprocessing={"handler": "handler.py"}))
    (kernel / "handler.py").write_text(
        "import os\n"
        "try:\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "except OSError:\n"
        "    pass\n"
        "open('scratch.txt', 'w').write('the private directory stays writable')\n\n\n"
        "def preprocess(inputs):\n    return inputs\n"
    )
    code, output, _ = shim(["validate", "--format", "json", str(kernel)], workspace,
                           _environment(workspace, "unused"))
    assert code == 0, output
    assert not marker.exists(), "the handler created a file outside its private directory"
    assert not (kernel / "scratch.txt").exists()


# -- a kernel folder whose name is not UTF-8 and holds a terminal escape --------------------------------

@pytest.mark.parametrize("fmt", ["text", "json", "github", "junit"])
def test_undecodable_escaping_kernel_name_is_reported_in_every_format(fmt: str, workspace: Path) -> None:
    """The JUnit writer crashed (exit 70) on an undecodable folder name; text and GitHub output
    passed a terminal escape from the name through to the CI log."""
    kernels = workspace / "kernels"
    name = os.fsdecode(b"odd-\xff\x1b[2J-" + fmt.encode())
    kernel = kernels / name
    hc._copy(ONNX_BASE, kernel)
    (kernel / "evil\x1b[31m.pkl").write_bytes(b"x")
    junit = workspace / f"odd-{fmt}.xml"
    args = ["validate", "--junit", str(junit)] if fmt == "junit" else ["validate", "--format", fmt]
    code, output, _ = shim([*args, "--skip-samples", str(kernel)], workspace, _environment(workspace, "x"))
    written = junit.read_text(encoding="utf-8") if fmt == "junit" else ""
    assert code == 1 and "Traceback" not in output, output
    assert "\x1b" not in output + written, "a terminal escape reached the report"
    assert "KS402" in output + written


def test_only_the_kept_directory_stays_writable(tmp_path: Path) -> None:
    """``run_isolated(..., writable=[dir])`` (``shim profile`` returns its arrays that way): the kept
    directory takes writes, a sibling directory of the same file system does not."""
    if not _mount_namespaces_allowed():
        pytest.skip("this host allows no mount namespace (documented in SECURITY.md)")
    import tempfile

    from shim.sandbox import isolate_filesystem

    home, kept, other = tempfile.mkdtemp(), tmp_path / "kept", tmp_path / "other"
    kept.mkdir()
    other.mkdir()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        if not isolate_filesystem(home, [str(kept)]):
            os._exit(2)
        (kept / "result.npy").write_bytes(b"ok")
        try:
            (other / "planted").write_bytes(b"no")
        except OSError:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    os.rmdir(home)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (kept / "result.npy").read_bytes() == b"ok"
    assert not (other / "planted").exists()
