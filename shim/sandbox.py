"""Run one check in a child process with a time, CPU and memory budget and a scrubbed environment.

Hostile input is parsed by libraries (the C unpickler, protobuf, zlib, onnxruntime, torch) whose
time and memory we cannot bound from Python: a pickle can ask the unpickler to grow its memo to
gigabytes, a handler can loop forever. So the content scan and the golden-sample run happen in a
fresh interpreter (``python -I -S`` given the parent's ``sys.path``: no user site, no
PYTHONPATH, no ``sitecustomize``) that:

- sets ``RLIMIT_AS`` (address space), ``RLIMIT_CPU`` and ``RLIMIT_CORE`` on itself before reading
  any input, and is killed with its whole process group when the wall-clock budget runs out;
- gets only an allow-listed environment (``PATH``, locale, thread and device selection variables;
  never tokens, cloud credentials or CI secrets) and a private temporary ``HOME``/``TMPDIR``/working
  directory, removed afterwards;
- enters a new, empty network namespace (only a loopback interface, down) before reading any
  input, where the operating system allows it (root or CAP_SYS_ADMIN, else an unprivileged user
  namespace mapping the caller's own uid). Kernel code run here (the handler, TorchScript code)
  then reaches no network;
- in a new mount namespace (same condition), remounts every file system read-only and mounts a
  fresh tmpfs on its private directory: that code can write no file outside it (no planted files,
  no marker, no change to the repository), whatever it reads;
- speaks JSON lines on a private pipe: ``{"progress": label}`` before each file, then
  ``{"result": ...}``. Its stdout is redirected to stderr so that kernel code printing cannot forge
  the protocol by accident. The parent never echoes the child's stderr.

A budget overrun, a crash or garbled output becomes ``SandboxFailure`` naming the last file the
child reported working on, which the caller turns into a finding.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Variables a child may inherit (device and thread selection); everything else is dropped.
PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
                    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_LIBRARY_PATH")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
#: The child gets exactly the parent's module search path (``-I -S``: nothing from the environment,
#: no site hooks), so it sees the same libraries as the process that asked for the check.
_BOOTSTRAP = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
              "from shim.sandbox import child_main; child_main(int(sys.argv[2]))")


@dataclass(frozen=True)
class Budget:
    wall_seconds: float
    cpu_seconds: int
    memory_bytes: int | None

    @classmethod
    def from_policy(cls, entry: dict[str, Any]) -> Budget:
        return cls(float(entry["wall_seconds"]), int(entry["cpu_seconds"]), int(entry["memory_bytes"]))


class SandboxFailure(Exception):
    """The child did not deliver a result; ``last`` is the last progress label it sent."""

    def __init__(self, message: str, last: str | None) -> None:
        super().__init__(message)
        self.last = last


def scrubbed_environment(home: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_VARIABLES if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=home, TMPDIR=home, PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    env.setdefault("LANG", "C.UTF-8")
    return env


def run_isolated(target: str, payload: dict[str, Any], budget: Budget,
                 writable: Sequence[Path | str] = ()) -> Any:
    """``target`` ("module:function") called as ``function(payload, progress)`` in a child process;
    returns its JSON-able result or raises ``SandboxFailure``. ``writable`` names directories the
    parent made for the child's bulk results (arrays too large for the JSON answer): they stay
    writable when everything else is made read-only."""
    home = tempfile.mkdtemp(prefix="kernelshim-sandbox-")
    read_end, write_end = os.pipe()
    request = json.dumps({"target": target, "payload": payload, "budget": budget.__dict__,
                          "writable": [os.path.realpath(path) for path in writable]}).encode()
    try:
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP, json.dumps([_PACKAGE_PARENT, *sys.path]),
                 str(write_end)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd=home, env=scrubbed_environment(home), start_new_session=True, pass_fds=(write_end,),
            )
        except OSError as exc:  # no process could be started (EAGAIN, ENOMEM): not the kernel's doing
            raise SandboxFailure(f"could not be started ({exc.strerror})", None) from None
        os.close(write_end)
        write_end = -1
        return _collect(process, request, read_end, budget)
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
        shutil.rmtree(home, ignore_errors=True)


def _collect(process: subprocess.Popen, request: bytes, read_end: int, budget: Budget) -> Any:
    import selectors
    import time

    deadline = time.monotonic() + budget.wall_seconds
    with contextlib.suppress(BrokenPipeError):
        assert process.stdin is not None
        process.stdin.write(request)
        process.stdin.close()
    buffer = b""
    last: str | None = None
    result: Any = None
    have_result = False
    with selectors.DefaultSelector() as selector:
        selector.register(read_end, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(timeout=remaining):
                _kill(process)
                raise SandboxFailure(f"did not finish within {budget.wall_seconds:g} s", last)
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            if len(buffer) > 64 * 1024 * 1024:
                _kill(process)
                raise SandboxFailure("sent more output than any check produces", last)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    _kill(process)
                    raise SandboxFailure("sent a garbled answer", last) from None
                if "progress" in message:
                    last = str(message["progress"])
                elif "result" in message:
                    result, have_result = message["result"], True
                elif "error" in message:
                    _kill(process)
                    raise SandboxFailure(f"failed with an internal error ({message['error']})", last)
                elif "memory" in message:
                    last = str(message.get("last") or last)
                    _kill(process)
                    raise SandboxFailure(f"needed more than {budget.memory_bytes:,} bytes of memory", last)
    code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    if have_result and code == 0:
        return result
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        raise SandboxFailure(f"used more than {budget.cpu_seconds} s of CPU time", last)
    raise SandboxFailure(f"stopped without an answer (exit status {code})", last)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _apply_limits(budget: dict[str, Any]) -> None:
    import resource

    cpu = int(budget["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if budget.get("memory_bytes"):
        memory = int(budget["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000


def isolate_network() -> bool:
    """Move this process into a new network namespace with no interfaces but a down loopback.

    Tried as is (root, CAP_SYS_ADMIN), then inside a new user namespace that maps the caller's uid
    and gid to themselves (so files keep their owners). False where neither is allowed (some
    container runtimes forbid both): the run then has the host's network, as documented."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) == 0:
            return True
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
            return False
        maps = (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1"))
        for name, text in maps:
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)
        return True
    except (OSError, AttributeError):
        return False


_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
_MOUNT_OPTION_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC}


def isolate_filesystem(writable: str, keep: Sequence[str] = ()) -> bool:
    """Make every mount read-only for this process, except a fresh tmpfs at ``writable`` and the
    directories in ``keep`` (each bind-mounted onto itself first, so it is a mount point of its own
    that the read-only pass skips).

    In a new mount namespace (first made private, so nothing propagates back to the host) each
    mount point is remounted read-only: code run here (a handler, a TorchScript model calling
    ``torch.from_file(..., shared=True)``) can write nothing outside its private directory, so it
    cannot plant files, touch markers or alter the repository. False, with nothing changed, where
    the OS allows no mount namespace (then the run has the caller's file system, as documented)."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        before = os.readlink("/proc/self/ns/mnt")
        if libc.unshare(_CLONE_NEWNS) != 0 or os.readlink("/proc/self/ns/mnt") == before:
            return False  # never touch mounts in the caller's namespace
        if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            return False
        private = os.fsencode(os.path.realpath(writable))
        # the writable tmpfs first: if it cannot be had, nothing is made read-only
        if libc.mount(b"tmpfs", private, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1g,mode=0700") != 0:
            return False
        os.chdir(private)  # the cwd was the directory now hidden under the tmpfs
        skipped = {private}
        for directory in keep:
            kept = os.fsencode(os.path.realpath(directory))
            if libc.mount(kept, kept, None, _MS_BIND, None) == 0:  # else it turns read-only too:
                skipped.add(kept)  # the child's write fails and is reported, nothing is opened up
        with open("/proc/self/mountinfo", "rb") as handle:
            mounts = [line.split() for line in handle]
        for fields in mounts:
            point = fields[4].decode("unicode_escape").encode("latin-1")  # mountinfo escapes " \t\n\\"
            if point in skipped:
                continue
            flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
            for option in fields[5].decode().split(","):
                flags |= _MOUNT_OPTION_FLAGS.get(option, 0)
            libc.mount(None, point, None, flags, None)  # some (e.g. /proc/sys) may refuse: fine
        return True
    except (OSError, AttributeError, ValueError):
        return False


def child_main(channel_fd: int) -> None:
    """Entry point of the child (see ``_BOOTSTRAP``)."""
    channel = os.fdopen(channel_fd, "w", buffering=1, encoding="utf-8")
    os.set_inheritable(channel_fd, False)
    os.dup2(2, 1)  # anything kernel code prints goes to stderr, never into the channel
    request = json.loads(sys.stdin.buffer.read())
    _apply_limits(request["budget"])
    isolate_network()
    isolate_filesystem(os.getcwd(), request.get("writable", ()))  # started in the private directory
    last: list[str | None] = [None]

    def progress(label: str) -> None:
        last[0] = label
        channel.write(json.dumps({"progress": label}) + "\n")

    module_name, _, function_name = request["target"].partition(":")
    function: Callable[[dict[str, Any], Callable[[str], None]], Any] = getattr(
        importlib.import_module(module_name), function_name
    )
    try:
        result = function(request["payload"], progress)
    except MemoryError:
        channel.write(json.dumps({"memory": True, "last": last[0]}) + "\n")
        channel.flush()
        os._exit(3)
    except Exception as exc:  # a defect of the check itself: say so, never pass the kernel
        channel.write(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:200]}"}) + "\n")
        channel.flush()
        os._exit(4)
    channel.write(json.dumps({"result": result}) + "\n")
    channel.flush()
    os._exit(0)
