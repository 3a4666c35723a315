"""One virtual environment per peer serving system, installed from requirements-peers.txt.

MLServer, BentoML and PyTriton pin incompatible web stacks, so they cannot share an
environment; none of them may touch the product's own venv either. Each ``[section]`` of the
requirements file becomes ``benchmarks/.venv-peers/<section>``. Installation is idempotent: a venv
records the hash of its section and is reused while the section is unchanged.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-peers.txt"
VENV_ROOT = HERE / ".venv-peers"
STAMP = "kernelshim-bench-requirements.sha256"


def sections(path: Path = REQUIREMENTS) -> dict[str, list[str]]:
    """``{section: [requirement lines]}`` from the ``[name]``-sectioned requirements file."""
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = result.setdefault(line[1:-1], [])
        elif current is not None:
            current.append(line)
    return result


def venv_python(name: str) -> Path:
    return VENV_ROOT / name / "bin" / "python"


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def is_installed(name: str) -> bool:
    stamp = VENV_ROOT / name / STAMP
    wanted = sections().get(name)
    return wanted is not None and stamp.is_file() and stamp.read_text().strip() == _digest(wanted)


def install(name: str, log: Path) -> tuple[bool, float, str]:
    """Create/refresh one peer venv; returns (ok, seconds, reason-if-failed)."""
    lines = sections()[name]
    if is_installed(name):
        return True, 0.0, ""
    started = time.perf_counter()
    venv = VENV_ROOT / name
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv_python(name)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *lines],
        ]
        for step in steps:
            out.write("$ " + " ".join(step) + "\n")
            out.flush()
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = log.read_text().strip().splitlines()[-3:]
                return False, time.perf_counter() - started, "pip failed: " + " | ".join(tail)
    (venv / STAMP).write_text(_digest(lines) + "\n")
    return True, time.perf_counter() - started, ""


def install_all(names: list[str]) -> dict[str, tuple[bool, float, str]]:
    """``install`` for each venv, all at once: each is a pip process mostly waiting on unpacking
    and disk, so four side by side take about as long as the slowest one (CI installs them on
    every fresh clone; one after another took ~3 minutes of its 30)."""
    unique = list(dict.fromkeys(names))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=len(unique)) as pool:
        results = pool.map(lambda name: install(name, VENV_ROOT / f"{name}.install.log"), unique)
        return dict(zip(unique, results, strict=True))


def main() -> int:
    """``python -m benchmarks.peer_envs [NAME...]``: install peer venvs, print the seconds each took."""
    results = install_all(sys.argv[1:] or list(sections()))
    for name, (ok, seconds, reason) in results.items():
        print(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.1f}s {reason}", flush=True)
    return 0 if all(ok for ok, _, _ in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
