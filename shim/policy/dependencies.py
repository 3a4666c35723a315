"""The dependency contract on a kernel's requirements.txt.

A kernel may add only a few lightweight packages, each pinned to one exact version, fetched from
the platform's index. Parsing is done by ``packaging`` (PEP 508), never by regexes; pip's own
option syntax (``-e``, ``--index-url``) is recognised before a line reaches the PEP 508 parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from shim.findings import Finding
from shim.kernelfs import KernelFileError, read_regular

_DIRECT_PREFIXES = ("git+", "hg+", "svn+", "bzr+", "http://", "https://", "file:", "ftp://")
_PATH_PREFIXES = (".", "/", "~", "\\")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with comments removed and backslash continuations joined, with 1-based numbers."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        elif " #" in line or "\t#" in line:
            line = line[: min(i for i in (line.find(" #"), line.find("\t#")) if i >= 0)]
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            yield start, full


def _split_hashes(line: str) -> tuple[str, list[str]]:
    """Separate pip's per-requirement ``--hash`` options (allowed: they make installs safer)."""
    parts = line.split()
    kept = [p for p in parts if not p.startswith("--hash")]
    options = [p for p in kept if p.startswith("-")]
    requirement = " ".join(p for p in kept if not p.startswith("-"))
    return requirement, options


#: Largest requirements.txt read (the artifact policy's role cap is usually smaller).
MAX_REQUIREMENTS_BYTES = 1024 * 1024


def check_requirements(path: Path, policy: dict[str, Any]) -> list[Finding]:
    """Every finding in requirements.txt against the dependency policy."""
    file = str(path)
    try:
        text = read_regular(path, MAX_REQUIREMENTS_BYTES).decode("utf-8")
    except KernelFileError as exc:
        return [Finding("KS501", file, "", f"cannot be read: {exc}", expected="a regular UTF-8 text file "
                        f"of at most {MAX_REQUIREMENTS_BYTES:,} bytes",
                        fix="replace it with the requirements file")]
    except UnicodeDecodeError:
        return [Finding("KS501", file, "", "is not UTF-8 text", expected="a UTF-8 requirements file",
                        fix="save the file as UTF-8")]
    runtime = {canonicalize_name(k): v for k, v in policy["runtime_packages"].items()}
    denied = {canonicalize_name(k): v for k, v in (policy.get("denied_packages") or {}).items()}
    prohibited = set(policy["prohibited_options"])
    findings: list[Finding] = []
    seen: dict[str, int] = {}
    count = 0
    for number, line in _logical_lines(text):
        where = f"line {number}"
        requirement_text, options = _split_hashes(line)
        if options or not requirement_text:
            option = (options or line.split())[0]
            flag = option.split("=", 1)[0]
            findings.append(Finding(
                "KS502", file, where,
                f"option {flag!r} is not allowed" if flag in prohibited or flag.startswith("-")
                else f"{line!r} is not allowed",
                expected="one 'name==version' requirement per line, installed from the platform index",
                fix=f"remove {flag!r}; packages come from the platform's index only"
                if flag != "-e" and flag != "--editable"
                else "remove the editable install; publish the package and pin it as name==version",
            ))
            continue
        lowered = requirement_text.lower()
        if lowered.startswith(_DIRECT_PREFIXES) or lowered.startswith(_PATH_PREFIXES) or "://" in lowered:
            findings.append(Finding(
                "KS502", file, where,
                f"{requirement_text!r} installs from a URL, VCS or local path",
                expected="name==version from the platform's package index",
                fix="publish the package to the index and pin it as name==version",
            ))
            continue
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            findings.append(Finding(
                "KS501", file, where, f"cannot parse {requirement_text!r}: {exc}",
                expected="a PEP 508 requirement such as requests==2.32.3",
                fix="correct the line's syntax",
            ))
            continue
        count += 1
        name = canonicalize_name(requirement.name)
        if requirement.url:
            findings.append(Finding(
                "KS502", file, where, f"{requirement.name} is a direct reference ({requirement.url})",
                expected="name==version from the platform's package index",
                fix="publish the package to the index and pin it as name==version",
            ))
            continue
        if name in seen:
            findings.append(Finding(
                "KS507", file, where, f"{requirement.name} is listed again (first on line {seen[name]})",
                expected="each package once", fix="delete one of the two lines",
            ))
        seen.setdefault(name, number)
        if name in denied:
            findings.append(Finding(
                "KS505", file, where, f"{requirement.name} is not allowed in kernels: {denied[name]}",
                expected="only lightweight packages the runtime lacks", fix=f"remove {requirement.name}",
            ))
            continue
        if name in runtime:
            findings.append(Finding(
                "KS504", file, where,
                f"{requirement.name} is provided by the Level-1 runtime image at version {runtime[name]}",
                expected="no Level-1 runtime package in a kernel's requirements",
                fix=f"remove the line; the kernel runs with {requirement.name}=={runtime[name]}",
            ))
            continue
        if requirement.marker is not None or requirement.extras:
            what = "an environment marker" if requirement.marker is not None else "extras"
            findings.append(Finding(
                "KS508", file, where, f"{requirement.name} uses {what} ({requirement_text!r})",
                expected="a plain name==version: the runtime is one fixed platform, "
                "extras pull in unpinned packages",
                fix="drop the marker/extras and list each needed package with its own ==version pin",
            ))
        specifiers = list(requirement.specifier)
        # Only '==': '===' (arbitrary equality) compares strings and bypasses version semantics.
        exact = (len(specifiers) == 1 and specifiers[0].operator == "=="
                 and not specifiers[0].version.endswith("*"))
        if not exact:
            shown = str(requirement.specifier) or "no version"
            findings.append(Finding(
                "KS503", file, where, f"{requirement.name} is not pinned to one exact version ({shown})",
                expected=f"{requirement.name}==X.Y.Z",
                fix=f"pin the version you tested with, e.g. `pip freeze | grep -i {requirement.name}`",
            ))
    if count > policy["max_packages"]:
        findings.append(Finding(
            "KS506", file, "", f"lists {count} packages; at most {policy['max_packages']} are allowed",
            expected=f"<= {policy['max_packages']} packages",
            fix="remove packages the model does not need at inference time",
        ))
    return findings
