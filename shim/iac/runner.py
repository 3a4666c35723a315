"""A thin, gated runner over terraform/tofu: init -> plan -out -> show -json -> gate -> apply.

``apply`` only ever applies the plan file that this same run produced and the gate passed; the
file's SHA-256 is taken when it is gated and checked again right before apply, so a plan
swapped in between is refused. Terraform's own output goes to stderr so stdout carries only
kernelshim's summary.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from shim.iac.plan_gate import GateResult, PlanGate
from shim.iac.plan_json import parse_plan
from shim.iac.terraform_binary import TerraformBinary

PLAN_DIR = Path(".terraform") / "kernelshim"  # inside the working directory; .terraform/ is never committed
PLAN_FILE = "plan.tfplan"
PLAN_JSON = "plan.json"


class TerraformStepFailed(Exception):
    """A terraform/tofu command exited non-zero; its own output (on stderr) says why."""

    def __init__(self, step: str, returncode: int) -> None:
        super().__init__(f"`{step}` failed with exit code {returncode}; Terraform's output above says why")
        self.step = step
        self.returncode = returncode


class PlanChangedError(Exception):
    """The plan file changed between the gate and apply."""


@dataclass
class RunOptions:
    var_files: Sequence[Path] = ()
    plugin_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class GatedPlan:
    plan_file: Path
    plan_json: Path
    sha256: str
    result: GateResult


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TerraformRunner:
    def __init__(
        self,
        binary: TerraformBinary,
        workdir: Path,
        options: RunOptions | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = Path(workdir).resolve()
        self.options = options or RunOptions()
        self.log = log or sys.stderr
        self.plan_dir = self.workdir / PLAN_DIR

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0"})
        env.update(self.options.extra_env)
        return env

    def _run(self, *args: str, capture: bool = False) -> str:
        command = [str(self.binary.path), *args]
        label = f"{self.binary.name} {' '.join(args)}"
        print(f"$ {label}", file=self.log, flush=True)
        completed = subprocess.run(
            command,
            cwd=self.workdir,
            env=self._env(),
            stdout=subprocess.PIPE if capture else self.log,
            stderr=self.log,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise TerraformStepFailed(label, completed.returncode)
        return completed.stdout if capture else ""

    def init(self) -> None:
        args = ["init", "-input=false", "-no-color"]
        if self.options.plugin_dir is not None:
            args.append(f"-plugin-dir={Path(self.options.plugin_dir).resolve()}")
        self._run(*args)

    def plan(self, plan_file: Path) -> None:
        args = ["plan", "-input=false", "-no-color", f"-out={plan_file}"]
        args += [f"-var-file={Path(f).resolve()}" for f in self.options.var_files]
        self._run(*args)

    def show_json(self, plan_file: Path) -> str:
        return self._run("show", "-json", "-no-color", str(plan_file), capture=True)

    def apply(self, plan_file: Path) -> None:
        # A saved plan is applied without a prompt; -input=false makes sure nothing waits for one.
        self._run("apply", "-input=false", "-no-color", str(plan_file))

    def outputs(self) -> dict[str, object]:
        """The root module's outputs after apply (``terraform output -json``), name -> value."""
        import json

        data = json.loads(self._run("output", "-json", "-no-color", capture=True) or "{}")
        return {name: entry.get("value") for name, entry in data.items() if isinstance(entry, dict)}

    def plan_and_gate(self, gate: PlanGate) -> GatedPlan:
        """init, plan -out, show -json, and the policy gate on that JSON."""
        import json

        self.plan_dir.mkdir(parents=True, exist_ok=True)
        plan_file = self.plan_dir / PLAN_FILE
        plan_json = self.plan_dir / PLAN_JSON
        for stale in (plan_file, plan_json):
            stale.unlink(missing_ok=True)
        self.init()
        self.plan(plan_file)
        digest = _sha256(plan_file)
        text = self.show_json(plan_file)
        plan_json.write_text(text, encoding="utf-8")
        plan = parse_plan(json.loads(text), str(plan_json.relative_to(self.workdir)))
        return GatedPlan(plan_file, plan_json, digest, gate.evaluate(plan))

    def apply_gated(self, gated: GatedPlan) -> None:
        """Apply exactly the plan file the gate passed."""
        if not gated.result.ok:
            raise PlanChangedError("the gate did not pass this plan; refusing to apply it")
        if _sha256(gated.plan_file) != gated.sha256:
            raise PlanChangedError(f"{gated.plan_file} changed after it was gated; refusing to apply it")
        self.apply(gated.plan_file)
