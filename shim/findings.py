"""Findings: what every check reports, and the registry of stable finding codes.

A finding always says which file, where in it (a JSON path like ``$.inputs[0].datatype`` or a
line like ``line 3``), what was expected and how to fix it. Codes never change meaning once
published, so CI configurations and docs can refer to them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: code -> one-line title. The single list of codes; tests assert each one is produced somewhere.
CODES: dict[str, str] = {
    # kernel layout and metadata
    "KS001": "kernel directory missing or not a directory",
    "KS002": "model_metadata.json missing",
    "KS003": "model_metadata.json is not valid JSON",
    "KS004": "model_metadata.json breaks the contract schema",
    "KS005": "duplicate tensor name in the contract",
    "KS006": "batching needs a dynamic first dimension",
    "KS007": "placeholder value left from `shim init`",
    "KS008": "preprocessing handler missing or invalid",
    # model file
    "KS101": "model file missing",
    "KS102": "model file name not allowed for the framework",
    "KS103": "model fails to load",
    "KS104": "framework runtime not installed",
    "KS105": "model references external data outside the kernel",
    "KS110": "torch.export program has a signature the v2 protocol cannot serve",
    "KS111": "dynamic dimension's exported range excludes sizes the contract allows",
    # declared tensors against the graph
    "KS201": "declared tensor not in the model",
    "KS202": "model tensor not declared in the contract",
    "KS203": "datatype differs from the model",
    "KS204": "rank differs from the model",
    "KS205": "static dimension differs from the model",
    "KS206": "dimension is dynamic in the model but static in the contract",
    "KS207": "dimension is static in the model but -1 in the contract",
    # golden samples
    "KS301": "no golden samples",
    "KS302": "golden sample file invalid",
    "KS303": "golden sample request rejected by the contract",
    "KS304": "golden sample inference failed",
    "KS305": "golden sample output differs from expected",
    # artifact policy
    "KS401": "kernel larger than the size cap",
    "KS402": "file not allowed in a kernel (deny by default: only files the contract names)",
    "KS403": "pickle references a global that runs code",
    "KS404": "pickle references a global outside the allow-list",
    "KS405": "symbolic link or special file in the kernel (never opened)",
    "KS406": "unreadable or malformed archive or pickle",
    "KS407": "file content is not what its role requires",
    "KS408": "model archive differs from the layout its framework writes",
    "KS409": "too many files, or a file over its role's size cap",
    "KS410": "check exceeded its time or memory budget",
    "KS411": "file with more than one hard link in the kernel (never read)",
    # dependency policy
    "KS501": "requirements.txt line cannot be parsed",
    "KS502": "prohibited requirement form (URL, VCS, path or option)",
    "KS503": "requirement not pinned to one exact version",
    "KS504": "requirement is a Level-1 runtime package",
    "KS505": "requirement is a denied package",
    "KS506": "too many requirements",
    "KS507": "duplicate requirement",
    "KS508": "requirement has an environment marker or extras that change what is installed",
    # Terraform plan gate (policies/plan_policy.yaml); `path` is the resource address
    "KS601": "plan deletes or replaces a protected endpoint resource",
    "KS602": "required label missing or empty",
    "KS603": "required tag missing or empty",
    "KS604": "GPU total over the cap",
    "KS605": "image not pinned by digest",
    "KS606": "image from a location that is not allowed",
    "KS607": "value the gate must check is unknown until apply",
    "KS608": "memory request or limit below the validator's measured peak",
    "KS609": "probe does not call the v2 health endpoints",
    "KS610": "monitored kernel's pods are not scraped by Prometheus",
    "KS611": "monitored kernel has no alert rules in the plan",
    "KS612": "image is not the one this deploy built",
    # monitoring: the training profile (validator) and its reference data (`shim profile`)
    "KS701": "monitoring profile missing",
    "KS702": "monitoring profile unreadable, too large or not strict JSON",
    "KS703": "monitoring profile breaks its schema",
    "KS704": "profiled features differ from the contract's features",
    "KS705": "profiled feature comes from another place than the contract says",
    "KS706": "profiled outputs differ from the contract's outputs",
    "KS707": "monitoring profile made for another model",
    "KS708": "features or summaries do not fit the contract's tensors",
    "KS709": "monitoring test does not fit the feature",
    "KS710": "monitoring expected figure does not fit the contract",
    "KS720": "reference data file unreadable or of an unsupported format",
    "KS721": "reference data columns do not match the contract's features",
    "KS722": "reference data holds objects, pickles or non-numeric values",
    "KS723": "reference data request is not a valid v2 request for the contract",
    "KS724": "model failed on the reference data",
    "KS725": "profile would exceed its size cap",
    # lineage (the optional `lineage` block: dataset, training code, environment, evaluation)
    "KS801": "training framework version differs from the runtime image (major.minor)",
    "KS802": "lineage record is inconsistent",
    "KS803": "training code had uncommitted changes when the model was exported",
    # memory budget (resources.memory against the peak measured at max_batch_size)
    "KS841": "declared memory is below the measured peak times the policy headroom",
    "KS842": "the model fails on a batch of max_batch_size",
}

#: How much a finding counts: an ``error`` fails validation; a ``warning`` is printed and fails only
#: under ``--strict`` (a difference worth a look that is not always wrong, like a training framework
#: one minor version away from the runtime image's).
SEVERITIES = ("error", "warning")


#: Longest text of each field of a finding.
_LIMITS = {"file": 1024, "path": 256, "message": 800, "expected": 600, "fix": 600}
#: Control characters shown escaped: a file name or an echoed value with a terminal escape, a
#: carriage return or (in a location) a newline cannot forge or hide lines of a report.
_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(32), 127)}
_TEXT_ESCAPES = {i: v for i, v in _ESCAPES.items() if i not in (9, 10)}


def printable(text: str) -> str:
    """A path or name as every report shows it: control characters and undecodable bytes escaped."""
    return _escaped(str(text), _ESCAPES)


def _escaped(text: str, table: dict[int, str]) -> str:
    """Control characters as ``\\xNN``; undecodable bytes of a file name (surrogates) as
    ``\\udcNN``, so every report can be written as UTF-8 (JUnit, JSON, a terminal)."""
    if text.isprintable():
        return text
    text = text.translate(table)
    if any("\ud800" <= c <= "\udfff" for c in text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True)
class Finding:
    """One problem found in a kernel."""

    code: str
    file: str
    path: str
    message: str
    expected: str = ""
    fix: str = ""
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered finding code {self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown finding severity {self.severity!r}")
        # Findings echo kernel values (a requirement line, a schema error's instance); none is shown
        # at length, whatever check made it.
        for name, limit in _LIMITS.items():
            value = _escaped(getattr(self, name), _ESCAPES if name in ("file", "path") else _TEXT_ESCAPES)
            object.__setattr__(self, name, value)
            if len(value) > limit:
                object.__setattr__(self, name, value[: limit - 30] + f"... ({len(value):,} characters)")

    @property
    def is_warning(self) -> bool:
        return self.severity == "warning"

    def counts(self, strict: bool = False) -> bool:
        """Whether this finding fails validation: every error; a warning only under ``--strict``."""
        return strict or not self.is_warning

    @property
    def title(self) -> str:
        return CODES[self.code]

    def to_dict(self) -> dict[str, str]:
        data = asdict(self)
        data["title"] = self.title
        return data

    def render(self) -> str:
        """One human-readable block: location and code first, then what and how to fix."""
        where = f"{self.file}:{self.path}" if self.path else self.file
        marker = "warning: " if self.is_warning else ""
        lines = [f"{where}: {self.code} {marker}{self.message}"]
        if self.expected:
            lines.append(f"    expected: {self.expected}")
        if self.fix:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)
