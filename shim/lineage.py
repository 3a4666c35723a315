"""Lineage: where a model came from (data, code, environment, evaluation), as the contract's
optional ``lineage`` block records it (contracts/model_metadata.schema.json).

The training script calls ``capture(...)`` when it exports the model; it records the environment
the model was really trained in (Python, framework versions, CUDA/cuDNN and the GPU model when
present) and, given them, the dataset digest, the code repository and commit and the evaluation
figures. ``dataset_from_dvc`` reads the md5 a DVC ``.dvc`` or ``dvc.lock`` file records for a
dataset (``shim lineage KERNEL_DIR --dvc FILE`` uses it) and ``dataset_from_manifest`` hashes a
manifest file.

A leaf module (standard library, PyYAML and ``shim.strict_json`` only): a training script imports it
without the validator, the runtimes or onnx. Nothing here imports a framework that is not already
installed, and a framework is only asked for its CUDA details when the training script already
imported it (``sys.modules``), so ``capture`` never adds seconds of torch import to an export.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

#: Distributions ``capture`` records when installed (a framework the model may have been trained or
#: exported with); the caller adds its own with ``frameworks=``.
DEFAULT_FRAMEWORKS = ("torch", "onnx", "onnxruntime", "numpy", "scikit-learn", "skl2onnx", "tensorflow",
                      "jax", "xgboost", "lightgbm")
#: Largest DVC file read: real ones are a few hundred bytes; a bigger one is not a DVC file.
MAX_DVC_BYTES = 1024 * 1024
#: Most outs/deps entries looked at in one DVC file.
MAX_DVC_ENTRIES = 10_000
_MD5_RE = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_GIT_TIMEOUT_S = 10


class LineageError(Exception):
    """A lineage source (DVC file, manifest, git checkout) cannot be read; the message says why."""


def python_version() -> str:
    return platform.python_version()


def framework_versions(names: Iterable[str] = DEFAULT_FRAMEWORKS) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names), read from package metadata, never by
    importing the package."""
    found = {}
    for name in names:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def accelerator() -> dict[str, Any]:
    """CUDA and cuDNN versions and the GPU model, from torch when the caller already imported it."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    found: dict[str, Any] = {}
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    try:
        available = bool(cuda) and torch.cuda.is_available()
    except Exception:  # a broken driver is "no GPU" for the record, not a failed export
        available = False
    if not available:
        return found
    found["cuda"] = str(cuda)
    try:
        cudnn = torch.backends.cudnn.version()
        if cudnn:  # 90100 -> 9.1.0
            found["cudnn"] = f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}"
        found["gpu"] = str(torch.cuda.get_device_name(0))[:128]
    except Exception:
        pass
    return found


def environment(frameworks: Iterable[str] = DEFAULT_FRAMEWORKS) -> dict[str, Any]:
    """The lineage ``environment`` object of this process."""
    return {"python": python_version(), "frameworks": framework_versions(frameworks),
            "platform": f"{platform.system()}-{platform.machine()}"[:64], **accelerator()}


def _git(directory: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LineageError(f"{directory}: git failed: {exc}") from None
    if done.returncode != 0:
        raise LineageError(f"{directory}: not a git checkout with a commit (git {' '.join(args)} failed)")
    return done.stdout.strip()


def code_from_git(directory: Path | str = ".") -> dict[str, Any]:
    """The ``code`` object of the git checkout holding ``directory``: the ``origin`` URL, the commit
    and whether tracked files had uncommitted changes (a dirty tree is not that commit)."""
    directory = Path(directory)
    commit = _git(directory, "rev-parse", "HEAD")
    try:
        repository = _git(directory, "remote", "get-url", "origin")
    except LineageError:
        raise LineageError(f"{directory}: the checkout has no 'origin' remote; pass code= with the "
                           "repository URL") from None
    dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
    return {"repository": repository, "commit": commit, "dirty": dirty}


def dataset_from_manifest(path: Path | str, uri: str | None = None) -> dict[str, Any]:
    """The ``dataset`` object whose digest is the SHA-256 of a manifest file (a list of the data
    files with their own hashes, written by the data pipeline)."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise LineageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    dataset = {"digest": f"sha256:{digest.hexdigest()}", "source": "manifest", "path": path.name[:255]}
    if uri:
        dataset["uri"] = uri
    return dataset


def _load_dvc_yaml(path: Path) -> Any:
    import yaml

    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_DVC_BYTES + 1)
    except OSError as exc:
        raise LineageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_DVC_BYTES:
        raise LineageError(f"{path}: larger than {MAX_DVC_BYTES:,} bytes; not a DVC file")
    try:
        text = data.decode("utf-8")
        # Aliases are how a small YAML file becomes a huge structure; DVC never writes them.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise LineageError(f"{path}: uses YAML aliases, which DVC files never contain")
        return yaml.safe_load(text)
    except LineageError:
        raise
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise LineageError(f"{path}: not valid YAML{at}; expected a DVC .dvc or dvc.lock file") from None


def _dvc_entries(path: Path, document: Any) -> list[dict[str, Any]]:
    """Every ``{path, md5, ...}`` entry: a ``.dvc`` file's ``outs`` (and ``deps``), a ``dvc.lock``'s
    stages' ``deps`` and ``outs``."""
    if not isinstance(document, dict):
        raise LineageError(f"{path}: expected a mapping with 'outs' (.dvc) or 'stages' (dvc.lock)")
    lists: list[Any] = []
    if "stages" in document:
        stages = document["stages"]
        if not isinstance(stages, dict):
            raise LineageError(f"{path}: 'stages' must be a mapping of stage names to their deps and outs")
        for stage in list(stages.values())[:MAX_DVC_ENTRIES]:
            if isinstance(stage, dict):
                lists += [stage.get("deps"), stage.get("outs")]
    else:
        lists += [document.get("outs"), document.get("deps")]
    entries = []
    for items in lists:
        if items is None:
            continue
        if not isinstance(items, list):
            raise LineageError(f"{path}: 'outs' and 'deps' must be lists of entries with path and md5")
        for item in items[:MAX_DVC_ENTRIES]:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                entries.append(item)
    if not entries:
        raise LineageError(f"{path}: records no outs or deps with a path; expected a DVC .dvc or "
                           "dvc.lock file (`dvc add` or `dvc repro` writes one)")
    return entries


def dataset_from_dvc(path: Path | str, data_path: str | None = None,
                     uri: str | None = None) -> dict[str, Any]:
    """The ``dataset`` object for the md5 a DVC file records. ``data_path`` picks the entry when
    the file records more than one (a ``dvc.lock`` lists every stage's deps and outs)."""
    path = Path(path)
    entries = _dvc_entries(path, _load_dvc_yaml(path))
    paths = sorted({str(e["path"])[:200] for e in entries})
    if data_path is not None:
        chosen = [e for e in entries if e["path"] == data_path]
        if not chosen:
            raise LineageError(f"{path}: records no entry with path {data_path[:200]!r}; it records "
                               f"{', '.join(paths[:20])}")
    elif len(paths) > 1:
        raise LineageError(f"{path}: records {len(paths)} paths ({', '.join(paths[:20])}); "
                           "name the dataset's with --dvc-path")
    else:
        chosen = entries
    entry = chosen[0]
    md5 = entry.get("md5")
    if md5 is None and isinstance(entry.get("hash"), str) and entry.get("hash") != "md5":
        raise LineageError(f"{path}: entry {entry['path'][:200]!r} records a {entry['hash'][:20]!r} hash, "
                           "not an md5")
    if not isinstance(md5, str) or not _MD5_RE.match(md5):
        raise LineageError(f"{path}: entry {entry['path'][:200]!r} has no md5 (32 hex digits, '.dir' "
                           "for a directory); run `dvc add` or `dvc repro` to record it")
    dataset: dict[str, Any] = {"digest": f"md5:{md5}", "source": "dvc", "path": entry["path"][:255]}
    for key in ("size", "nfiles"):
        if isinstance(entry.get(key), int) and not isinstance(entry.get(key), bool) and entry[key] >= 0:
            dataset[key] = entry[key]
    if uri:
        dataset["uri"] = uri
    return dataset


def capture(
    kernel_dir: Path | str | None = None,
    *,
    frameworks: Iterable[str] | None = None,
    dataset: dict[str, Any] | None = None,
    code: dict[str, Any] | str | Path | None = None,
    evaluation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The lineage block of this training run; written into ``kernel_dir``'s model_metadata.json
    when given (other lineage fields already there are kept unless replaced here).

    ``code`` is a ``{"repository", "commit"}`` object, or a directory whose git checkout gives it.
    ``evaluation`` is a list of ``{"metric", "value", "split"}``.
    """
    names = list(DEFAULT_FRAMEWORKS) + [n for n in (frameworks or []) if n not in DEFAULT_FRAMEWORKS]
    lineage: dict[str, Any] = {"environment": environment(names)}
    if dataset is not None:
        lineage["dataset"] = dataset
    if isinstance(code, (str, Path)):
        lineage["code"] = code_from_git(code)
    elif code is not None:
        lineage["code"] = code
    if evaluation is not None:
        lineage["evaluation"] = evaluation
    if kernel_dir is not None:
        record(kernel_dir, lineage)
    return lineage


def record(kernel_dir: Path | str, lineage: dict[str, Any]) -> Path:
    """Merge ``lineage`` into the kernel's model_metadata.json (key order and other fields kept)."""
    from shim.strict_json import StrictJSONError, loads_strict

    path = Path(kernel_dir) / "model_metadata.json"
    try:
        metadata = loads_strict(path.read_bytes())
    except (OSError, StrictJSONError) as exc:
        raise LineageError(f"{path}: cannot be read as the kernel's contract ({exc})") from None
    if not isinstance(metadata, dict):
        raise LineageError(f"{path}: is not a JSON object")
    existing = metadata.get("lineage") if isinstance(metadata.get("lineage"), dict) else {}
    metadata["lineage"] = {**existing, **lineage}
    path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return path
