"""Load Ops policies from YAML and check them against their schemas in contracts/.

The shipped policies live in policies/. A platform team can point ``--policy-dir`` (or
``KERNELSHIM_POLICY_DIR``) at its own directory; any file found there replaces the shipped one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.resources import policy_path

POLICY_DIR_ENV = "KERNELSHIM_POLICY_DIR"


class PolicyError(Exception):
    """A policy file is missing or malformed: a platform configuration error, not a kernel finding."""


@dataclass(frozen=True)
class Policies:
    artifact: dict[str, Any]
    dependency: dict[str, Any]
    source: str


def _policy_file(name: str, override_dir: Path | None) -> Path:
    if override_dir is not None and (override_dir / name).is_file():
        return override_dir / name
    return policy_path(name)


def load_policy_file(path: Path, schema_name: str) -> dict[str, Any]:
    import yaml  # imported here: the hooks' cache path only needs ``effective_policy_files``

    from shim.spec.schemas import json_path, schema_errors

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    errors = schema_errors(schema_name, data)
    if errors:
        details = "; ".join(f"{json_path(e)}: {e.message}" for e in errors[:5])
        raise PolicyError(f"{path}: breaks contracts/{schema_name}: {details}")
    return data


def _check_allowed_patterns(path: Path, artifact: dict[str, Any]) -> None:
    """Ops may allow more files, but never a pattern that admits what the gate exists to refuse.

    The schema already requires exact names or a literal extension; here a pattern may not match
    any name the policy itself explains as refused (``forbidden_extensions``: pickles, archives,
    compiled code...), nor a hidden file, nor a file with another role.
    """
    import fnmatch

    probes = [f"x{suffix}" for suffix in artifact.get("forbidden_extensions") or {}]
    probes += [".hidden", "model_metadata.json", "requirements.txt", "x.pyc", "x.py", "x.pkl", "x.zip"]
    patterns = list(artifact.get("documentation") or [])
    patterns += [entry["pattern"] for entry in artifact.get("extra_files") or []]
    for pattern in patterns:
        admitted = [name for name in probes if fnmatch.fnmatchcase(name, pattern)]
        if admitted:
            raise PolicyError(
                f"{path}: the allowed-file pattern {pattern!r} would admit {admitted[0]!r}; allow files by "
                "exact name or a pattern with a plain-text extension (e.g. 'NOTICE', '*.md')"
            )


def effective_policy_files(policy_dir: Path | str | None = None) -> tuple[Path, Path]:
    """The artifact and dependency policy files in effect, without parsing them.

    The hooks' result cache keys on these files' bytes, so a cache hit needs no YAML or schema work.
    """
    if policy_dir is None and os.environ.get(POLICY_DIR_ENV):
        policy_dir = os.environ[POLICY_DIR_ENV]
    override = Path(policy_dir) if policy_dir else None
    if override is not None and not override.is_dir():
        raise PolicyError(f"{override}: policy directory does not exist")
    return _policy_file("artifact_policy.yaml", override), _policy_file("dependency_policy.yaml", override)


def _checked_artifact(path: Path) -> dict[str, Any]:
    artifact = load_policy_file(path, "artifact_policy.schema.json")
    _check_allowed_patterns(path, artifact)
    return artifact


def load_policies(policy_dir: Path | str | None = None) -> Policies:
    """The effective policies: shipped defaults, each replaced by a file in ``policy_dir`` if present."""
    artifact_file, dependency_file = effective_policy_files(policy_dir)
    return Policies(
        artifact=_checked_artifact(artifact_file),
        dependency=load_policy_file(dependency_file, "dependency_policy.schema.json"),
        source=f"{artifact_file.parent}",
    )
