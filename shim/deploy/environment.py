"""A deploy environment: ENV_DIR holds a Terraform root configuration and ``deploy.json``.

``deploy.json`` (contracts/deploy_env.schema.json) says what the root configuration cannot: which
module's variables it takes, where the image goes, which runtime it is built on and which
policies gate this environment. Ops own one per environment (dev, staging, prod).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shim.strict_json import StrictJSONError, loads_strict

ENV_FILE = "deploy.json"
SCHEMA = "deploy_env.schema.json"
MAX_BYTES = 64 * 1024


class DeployEnvError(Exception):
    """ENV_DIR or its deploy.json is missing or invalid; the message names the file and field."""


@dataclass(frozen=True)
class DeployEnvironment:
    root: Path
    module: str
    registry: str
    runtime_image: str
    tls_verify: bool = True
    build_network: str | None = None
    policy_dir: Path | None = None


def image_tag(registry: str, name: str, version: str) -> str:
    """Where the kernel's Level-2 image is pushed: REGISTRY/NAME:VERSION ('+' is not allowed in a tag)."""
    return f"{registry}/{name}:{version.replace('+', '_')}"


def load_environment(env_dir: Path | str) -> DeployEnvironment:
    import jsonschema

    from shim.resources import contract_path

    root = Path(env_dir).resolve()
    if not root.is_dir():
        raise DeployEnvError(f"{env_dir}: no such environment directory")
    if not any(root.glob("*.tf")) and not any(root.glob("*.tf.json")):
        raise DeployEnvError(f"{env_dir}: holds no Terraform root configuration (*.tf)")
    path = root / ENV_FILE
    if not path.is_file():
        raise DeployEnvError(
            f"{path}: missing; an environment directory needs a {ENV_FILE} naming the module, the registry "
            'and the runtime image, e.g. {"env_version": "1", "module": "k8s", "registry": '
            '"registry.example.com/models", "runtime_image": "localhost/kernelshim/level1-runtime:cpu"}'
        )
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DeployEnvError(f"{path}: larger than {MAX_BYTES} bytes; a deploy.json is a few lines")
        data = loads_strict(path.read_bytes())
    except StrictJSONError as exc:
        where = f" at {exc.location}" if exc.location else ""
        raise DeployEnvError(f"{path}: not valid JSON{where}: {exc}") from None
    schema = json.loads(contract_path(SCHEMA).read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.path)
        raise DeployEnvError(f"{path}: {where}: {first.message[:300]} (see contracts/{SCHEMA})")
    policy_dir = None
    if "policy_dir" in data:
        policy_dir = (root / data["policy_dir"]).resolve()
        if not policy_dir.is_dir():
            raise DeployEnvError(f"{path}: $.policy_dir: {data['policy_dir']} is not a directory of {root}")
    return DeployEnvironment(
        root=root,
        module=data["module"],
        registry=data["registry"],
        runtime_image=data["runtime_image"],
        tls_verify=data.get("tls_verify", True),
        build_network=data.get("build_network"),
        policy_dir=policy_dir,
    )
