"""Render a gate result: a readable summary of the plan's changes and every violation.

``text`` for people, ``json`` for tools, ``github`` for GitHub Actions annotations (one
``::error`` line per violation, plus the text summary for the log).
"""

from __future__ import annotations

import json
from collections import Counter

from shim.iac.plan_gate import GateResult

_SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "read": "<=", "forget": "."}
_ORDER = ("create", "update", "replace", "delete", "read", "forget")


def change_counts(result: GateResult) -> Counter[str]:
    return Counter(c.verb for c in result.plan.resource_changes if c.mode == "managed")


def render_text(result: GateResult) -> str:
    plan = result.plan
    counts = change_counts(result)
    lines = [
        f"Plan {plan.source} (Terraform {plan.terraform_version}, plan format {plan.format_version}): "
        + ", ".join(f"{counts.get(verb, 0)} to {verb}" for verb in ("create", "update", "replace", "delete"))
        + f", {counts.get('no-op', 0)} unchanged"
    ]
    for change in plan.resource_changes:
        if change.mode == "managed" and change.verb != "no-op":
            lines.append(f"  {_SYMBOLS.get(change.verb, '?'):>3} {change.address} ({change.verb})")
    if result.gpu_claims:
        lines.append(f"GPUs at full scale: {result.gpu_total} of {result.gpu_cap} allowed")
    if result.ok:
        lines.append("Policy gate: passed")
    else:
        lines.append(f"Policy gate: FAILED with {len(result.findings)} violation(s)")
        lines.extend(f.render() for f in result.findings)
    return "\n".join(lines)


def render_json(result: GateResult) -> str:
    counts = change_counts(result)
    return json.dumps(
        {
            "plan": result.plan.source,
            "format_version": result.plan.format_version,
            "terraform_version": result.plan.terraform_version,
            "passed": result.ok,
            "changes": {verb: counts.get(verb, 0) for verb in (*_ORDER, "no-op")},
            "resource_changes": [
                {"address": c.address, "action": c.verb}
                for c in result.plan.resource_changes
                if c.mode == "managed" and c.verb != "no-op"
            ],
            "gpus": {
                "total": result.gpu_total,
                "cap": result.gpu_cap,
                "claims": [
                    {"address": c.address, "per_replica": c.per_replica, "replicas": c.replicas}
                    for c in result.gpu_claims
                ],
            },
            "violations": [f.to_dict() for f in result.findings],
        },
        indent=2,
    )


def _escape(text: str) -> str:
    """Workflow-command escaping for a message (GitHub's documented %, CR, LF rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render_github(result: GateResult) -> str:
    annotations = [
        f"::error title={f.code} {f.title}::{_escape(f.message + (' Fix: ' + f.fix if f.fix else ''))}"
        for f in result.findings
    ]
    return "\n".join([*annotations, render_text(result)])


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}
