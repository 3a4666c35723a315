"""Reading a kernel directory against the contract: ``read_metadata`` and ``read_kernel``.

``read_kernel`` turns a directory into a typed ``shim.spec.kernel.Kernel`` (or findings explaining
why it can't). The typed model lives in ``shim.spec`` (the bottom layer); this is the contract
layer's reader, which checks strict JSON, the schema and the rules a schema cannot express.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shim.findings import Finding
from shim.kernelfs import KernelFileError, read_regular
from shim.spec.kernel import Kernel, kernel_from_metadata
from shim.spec.layout import METADATA_FILE, PLACEHOLDER
from shim.spec.schemas import METADATA_SCHEMA, describe_expectation, json_path, schema_errors
from shim.strict_json import StrictJSONError, loads_strict

#: Largest model_metadata.json read (the artifact policy's role_limits.metadata applies too).
MAX_METADATA_BYTES = 1024 * 1024
class KernelError(Exception):
    """The kernel cannot be read into a ``Kernel``; ``findings`` say why."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f.render() for f in findings))
        self.findings = findings


def _display(root: Path, name: str) -> str:
    return str(root / name)


def read_metadata(root: Path) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Parse and schema-check model_metadata.json. Returns the dict only if it is fully valid."""
    root = Path(root)
    file = _display(root, METADATA_FILE)
    if not root.is_dir():
        return None, [
            Finding(
                "KS001", str(root), "", "is not a directory",
                expected="a kernel directory containing model_metadata.json",
                fix="pass the path of the kernel directory",
            )
        ]
    path = root / METADATA_FILE
    try:
        data = read_regular(path, MAX_METADATA_BYTES)
    except KernelFileError as exc:
        missing = exc.kind == "missing"
        return None, [
            Finding(
                "KS002", file, "",
                "model_metadata.json is missing" if missing else f"model_metadata.json {exc}",
                expected="the kernel's contract file, a regular JSON file",
                fix="create it (`shim init` scaffolds one) next to the model file" if missing
                else "replace it with the contract file itself",
            )
        ]
    try:
        metadata = loads_strict(data)
    except StrictJSONError as exc:
        return None, [
            Finding(
                "KS003", file, exc.location, f"not valid JSON: {exc}",
                expected="one JSON object with unique keys and finite numbers",
                fix="fix the JSON syntax at that spot (a JSON linter or `python -m json.tool` shows it)",
            )
        ]
    findings = list(_placeholder_findings(file, metadata))
    placeholder_paths = {f.path for f in findings}
    findings += [
        Finding(
            "KS004", file, json_path(error), error.message,
            expected=describe_expectation(error),
            fix="edit that field to match (the contract is contracts/model_metadata.schema.json)",
        )
        for error in schema_errors(METADATA_SCHEMA, metadata)
        if json_path(error) not in placeholder_paths
    ]
    if findings:
        return None, findings
    return metadata, _semantic_findings(file, metadata)


def read_metadata_leniently(root: Path) -> Any:
    """The metadata as far as it parses (strict JSON, no schema), or None: the artifact gate still
    needs model_file, framework and handler when the metadata breaks the contract."""
    try:
        return loads_strict(read_regular(Path(root) / METADATA_FILE, MAX_METADATA_BYTES))
    except (KernelFileError, StrictJSONError):
        return None


def _placeholder_findings(file: str, value: Any, path: str = "$") -> list[Finding]:
    if isinstance(value, str) and PLACEHOLDER in value:
        return [Finding(
            "KS007", file, path, f"still holds the placeholder {value!r} written by `shim init`",
            expected="the real value", fix=f"replace {value!r} with the real value",
        )]
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _placeholder_findings(file, v, f"{path}.{k}")]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _placeholder_findings(file, v, f"{path}[{i}]")]
    return []


def _semantic_findings(file: str, metadata: dict[str, Any]) -> list[Finding]:
    """Rules a JSON Schema cannot express: unique tensor names, batching needs a dynamic dim 0."""
    findings: list[Finding] = []
    for group in ("inputs", "outputs"):
        seen: set[str] = set()
        for index, tensor in enumerate(metadata[group]):
            if tensor["name"] in seen:
                findings.append(
                    Finding(
                        "KS005", file, f"$.{group}[{index}].name",
                        f"tensor name {tensor['name']!r} appears twice in {group}",
                        expected="unique tensor names", fix="rename or remove the duplicate",
                    )
                )
            seen.add(tensor["name"])
    batching = metadata.get("batching") or {}
    if batching.get("max_batch_size", 0) > 0:
        for group in ("inputs", "outputs"):
            for index, tensor in enumerate(metadata[group]):
                if not tensor["shape"] or tensor["shape"][0] != -1:
                    findings.append(
                        Finding(
                            "KS006", file, f"$.{group}[{index}].shape",
                            f"batching.max_batch_size is {batching['max_batch_size']} but "
                            f"{tensor['name']!r} has shape {tensor['shape']}",
                            expected="-1 as the first (batch) dimension of every tensor",
                            fix="make the first dimension -1 (and dynamic in the model), or set "
                            "batching.max_batch_size to 0",
                        )
                    )
    return findings


def read_kernel(root: Path | str) -> Kernel:
    """Read a kernel directory; raise ``KernelError`` with findings if its metadata is unusable."""
    root = Path(root)
    metadata, findings = read_metadata(root)
    if metadata is None or findings:
        raise KernelError(findings)
    return kernel_from_metadata(root, metadata)
