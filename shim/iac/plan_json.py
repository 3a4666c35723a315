"""Read Terraform's machine-readable plan (``terraform show -json PLANFILE``).

The format is documented at https://developer.hashicorp.com/terraform/internals/json-format.
Terraform 1.0 writes format_version "0.2", Terraform 1.1+ writes "1.x"; both share the
``resource_changes[].{address, type, change.{actions, before, after, after_unknown}}`` shape this
module reads. OpenTofu writes the same format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_MAJOR_VERSIONS = ("0", "1")


class _Unknown:
    """Marks a value Terraform only learns during apply."""

    def __repr__(self) -> str:
        return "(known after apply)"


UNKNOWN = _Unknown()


def lookup_path(value: Any, unknown: Any, *path: str | int) -> Any:
    """The value at ``path`` in a planned object; ``UNKNOWN`` if computed at apply; None if absent.

    ``unknown`` is the matching ``after_unknown`` tree (``true`` where a value is unknown).
    """
    for key in path:
        if unknown is True:
            return UNKNOWN
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and key < len(value) else None
            unknown = unknown[key] if isinstance(unknown, list) and key < len(unknown) else False
        else:
            value = value.get(key) if isinstance(value, dict) else None
            unknown = unknown.get(key, False) if isinstance(unknown, dict) else False
    return UNKNOWN if unknown is True else value


class PlanFormatError(Exception):
    """The file is not a Terraform plan in JSON this gate can read."""


@dataclass(frozen=True)
class ResourceChange:
    address: str
    type: str
    mode: str
    actions: tuple[str, ...]
    before: Any
    after: Any
    after_unknown: Any
    action_reason: str | None = None

    @property
    def deletes(self) -> bool:
        """Delete or replace (``["delete", "create"]`` / ``["create", "delete"]``)."""
        return "delete" in self.actions

    @property
    def replaces(self) -> bool:
        return "delete" in self.actions and "create" in self.actions

    @property
    def exists_after(self) -> bool:
        """The object exists once the plan is applied (created, updated, replaced or unchanged)."""
        return self.mode == "managed" and self.after is not None and self.actions != ("delete",)

    @property
    def verb(self) -> str:
        if self.replaces:
            return "replace"
        return {
            "create": "create",
            "update": "update",
            "delete": "delete",
            "no-op": "no-op",
            "read": "read",
            "forget": "forget",
        }.get(self.actions[0] if self.actions else "", "/".join(self.actions))


@dataclass(frozen=True)
class Plan:
    format_version: str
    terraform_version: str
    resource_changes: tuple[ResourceChange, ...]
    source: str
    #: The root module's input variables as planned (``variables.NAME.value``).
    variables: dict[str, Any] = field(default_factory=dict)


def parse_plan(data: Any, source: str = "plan") -> Plan:
    if not isinstance(data, dict):
        raise PlanFormatError(f"{source}: expected a JSON object from `terraform show -json PLANFILE`")
    version = data.get("format_version")
    if not isinstance(version, str) or version.split(".")[0] not in SUPPORTED_MAJOR_VERSIONS:
        raise PlanFormatError(
            f"{source}: format_version {version!r} is not supported; kernelshim reads Terraform plan "
            "JSON format 0.x (Terraform 1.0) and 1.x (Terraform 1.1+, OpenTofu)"
        )
    if "planned_values" not in data and "resource_changes" not in data:
        hint = (
            " (this looks like state JSON: run `terraform show -json PLANFILE`)" if "values" in data else ""
        )
        raise PlanFormatError(f"{source}: not a plan: no planned_values or resource_changes{hint}")
    if data.get("errored"):
        raise PlanFormatError(
            f"{source}: Terraform marked this plan as errored; it cannot be applied or gated"
        )
    changes = []
    for index, entry in enumerate(data.get("resource_changes") or []):
        try:
            change = entry["change"]
            changes.append(
                ResourceChange(
                    address=entry["address"],
                    type=entry["type"],
                    mode=entry.get("mode", "managed"),
                    actions=tuple(change["actions"]),
                    before=change.get("before"),
                    after=change.get("after"),
                    after_unknown=change.get("after_unknown") or {},
                    action_reason=entry.get("action_reason"),
                )
            )
        except (KeyError, TypeError):
            raise PlanFormatError(
                f"{source}: resource_changes[{index}] lacks address, type or change.actions"
            ) from None
    raw_variables = data.get("variables")
    variables = {
        name: entry.get("value")
        for name, entry in (raw_variables.items() if isinstance(raw_variables, dict) else [])
        if isinstance(name, str) and isinstance(entry, dict)
    }
    return Plan(
        format_version=version,
        terraform_version=str(data.get("terraform_version", "unknown")),
        resource_changes=tuple(changes),
        source=source,
        variables=variables,
    )


def load_plan(path: Path | str) -> Plan:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanFormatError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanFormatError(f"{path}: not valid JSON: {exc}") from None
    return parse_plan(data, str(path))
