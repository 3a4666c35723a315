"""Render validation reports: text for people, JSON for tools, GitHub annotations, JUnit XML."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from shim.contract.results import ValidationReport
from shim.findings import printable

_LINE_RE = re.compile(r"^line (\d+)")


def render_text(reports: Sequence[ValidationReport]) -> str:
    blocks = []
    for report in reports:
        cached = " (cached)" if report.cached else ""
        if report.ok:
            extra = f", {report.samples_run} golden sample(s) matched" if report.samples_run else ""
            blocks.append(f"{printable(report.kernel_dir)}: ok{extra}{cached}")
            continue
        blocks.append(f"{printable(report.kernel_dir)}: {len(report.findings)} finding(s){cached}")
        blocks.extend(f.render() for f in report.findings)
    failed = sum(1 for r in reports if not r.ok)
    blocks.append(f"{len(reports) - failed} kernel(s) valid, {failed} with findings")
    return "\n".join(blocks)


def render_json(reports: Sequence[ValidationReport]) -> str:
    return json.dumps(
        {
            "ok": all(r.ok for r in reports),
            "kernels": [
                {
                    "kernel": printable(r.kernel_dir),
                    "ok": r.ok,
                    "samples_run": r.samples_run,
                    "findings": [f.to_dict() for f in r.findings],
                }
                for r in reports
            ],
            "findings": [
                dict(f.to_dict(), kernel=printable(r.kernel_dir)) for r in reports for f in r.findings
            ],
        },
        indent=2,
    )


def _escape_github(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(reports: Sequence[ValidationReport]) -> str:
    """GitHub Actions workflow commands: each finding becomes an ::error annotation on its file."""
    lines = []
    for report in reports:
        for finding in report.findings:
            properties = [f"file={_escape_github(finding.file, True)}",
                          f"title={_escape_github(finding.code + ' ' + finding.title, True)}"]
            match = _LINE_RE.match(finding.path)
            if match:
                properties.insert(1, f"line={match.group(1)}")
            body = finding.message if not finding.path or match else f"{finding.path}: {finding.message}"
            if finding.fix:
                body += f" Fix: {finding.fix}"
            lines.append(f"::error {','.join(properties)}::{_escape_github(body)}")
    lines.append(render_text(reports).splitlines()[-1])
    return "\n".join(lines)


def render_junit(reports: Sequence[ValidationReport]) -> str:
    """One testsuite per kernel; one failing testcase per finding, or one passing case when clean."""
    import xml.etree.ElementTree as ET  # only here: the hooks render text and should start fast

    suites = ET.Element("testsuites", name="shim validate")
    for report in reports:
        suite = ET.SubElement(
            suites, "testsuite", name=printable(report.kernel_dir),
            tests=str(max(1, len(report.findings))), failures=str(len(report.findings)), errors="0",
        )
        if report.ok:
            ET.SubElement(suite, "testcase", classname=printable(report.kernel_dir), name="contract")
        for finding in report.findings:
            case = ET.SubElement(
                suite, "testcase", classname=printable(report.kernel_dir),
                name=f"{finding.code} {finding.file}:{finding.path}",
            )
            failure = ET.SubElement(case, "failure", type=finding.code, message=finding.message)
            failure.text = finding.render()
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}
