"""Render validation reports: text for people, JSON for tools, GitHub annotations, JUnit XML.

Every renderer carries each finding's severity. ``strict`` (``--strict``) makes warnings fail like
errors; without it a kernel with only warnings is valid and its warnings are still shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from shim.contract.results import ValidationReport
from shim.findings import printable

_LINE_RE = re.compile(r"^line (\d+)")


def _summary(reports: Sequence[ValidationReport], strict: bool) -> str:
    failed = sum(1 for r in reports if not r.passes(strict))
    warnings = sum(len(r.warnings) for r in reports)
    extra = f" ({warnings} warning(s){', failing under --strict' if strict else ''})" if warnings else ""
    return f"{len(reports) - failed} kernel(s) valid, {failed} with findings{extra}"


def render_text(reports: Sequence[ValidationReport], strict: bool = False) -> str:
    blocks = []
    for report in reports:
        cached = " (cached)" if report.cached else ""
        if report.passes(strict):
            extra = f", {report.samples_run} golden sample(s) matched" if report.samples_run else ""
            if report.memory_peak is not None:
                peak = report.memory_peak
                extra += (f", peak memory {peak.rss_bytes / 2**20:.0f} MiB at batch {peak.batch_size}"
                          + (f" ({peak.device_bytes / 2**20:.0f} MiB on the device)"
                             if peak.device_bytes is not None else ""))
            warnings = f", {len(report.warnings)} warning(s)" if report.warnings else ""
            blocks.append(f"{printable(report.kernel_dir)}: ok{extra}{warnings}{cached}")
            blocks.extend(f.render() for f in report.findings)
            continue
        blocks.append(f"{printable(report.kernel_dir)}: {len(report.findings)} finding(s){cached}")
        blocks.extend(f.render() for f in report.findings)
    blocks.append(_summary(reports, strict))
    return "\n".join(blocks)


def render_json(reports: Sequence[ValidationReport], strict: bool = False) -> str:
    return json.dumps(
        {
            "ok": all(r.passes(strict) for r in reports),
            "strict": strict,
            "kernels": [
                {
                    "kernel": printable(r.kernel_dir),
                    "ok": r.passes(strict),
                    "samples_run": r.samples_run,
                    "errors": len(r.errors),
                    "warnings": len(r.warnings),
                    "memory": r.memory_peak.to_json() if r.memory_peak is not None else None,
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


def render_github(reports: Sequence[ValidationReport], strict: bool = False) -> str:
    """GitHub Actions workflow commands: each finding becomes an ::error or ::warning annotation on
    its file (a warning is an ::error under ``--strict``, where it fails the job)."""
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
            command = "error" if finding.counts(strict) else "warning"
            lines.append(f"::{command} {','.join(properties)}::{_escape_github(body)}")
    lines.append(_summary(reports, strict))
    return "\n".join(lines)


def render_junit(reports: Sequence[ValidationReport], strict: bool = False) -> str:
    """One testsuite per kernel; one testcase per finding (failing for an error, and for a warning
    under ``strict``; a passing case whose output holds the warning otherwise), or one passing case
    when clean."""
    import xml.etree.ElementTree as ET  # only here: the hooks render text and should start fast

    suites = ET.Element("testsuites", name="shim validate")
    for report in reports:
        failing = [f for f in report.findings if f.counts(strict)]
        suite = ET.SubElement(
            suites, "testsuite", name=printable(report.kernel_dir),
            tests=str(max(1, len(report.findings))), failures=str(len(failing)), errors="0",
        )
        if not report.findings:
            ET.SubElement(suite, "testcase", classname=printable(report.kernel_dir), name="contract")
        for finding in report.findings:
            case = ET.SubElement(
                suite, "testcase", classname=printable(report.kernel_dir),
                name=f"{finding.code} {finding.file}:{finding.path}",
            )
            case.set("severity", finding.severity)
            if finding.counts(strict):
                failure = ET.SubElement(case, "failure", type=finding.code, message=finding.message)
                failure.text = finding.render()
            else:
                ET.SubElement(case, "system-out").text = finding.render()
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


RENDERERS = {"text": render_text, "json": render_json, "github": render_github}
