"""The optional pre/post-processing handler named by ``preprocessing.handler``.

Checked statically with ``ast`` first, so that a missing file, a syntax error or a missing function
is a precise finding (with its line) without importing anything: the static mode and
``--skip-samples`` stop here. The golden samples then run through the handler as served
(``shim.runtimes.handler``). The file must exist as a regular file in the kernel, be valid Python
and define ``preprocess`` and/or ``postprocess`` at module level.
"""

from __future__ import annotations

import ast

from shim.findings import Finding
from shim.kernelfs import MAX_HANDLER_BYTES, KernelFileError, is_regular_file, read_regular
from shim.spec.kernel import Kernel
from shim.spec.layout import METADATA_FILE

HANDLER_FUNCTIONS = ("preprocess", "postprocess")



def check_handler(kernel: Kernel) -> list[Finding]:
    name = (kernel.metadata.get("preprocessing") or {}).get("handler")
    if not name:
        return []
    metadata_file = str(kernel.root / METADATA_FILE)
    path = kernel.root / name
    if not is_regular_file(path):
        return [Finding(
            "KS008", metadata_file, "$.preprocessing.handler",
            f"handler file {name!r} does not exist in the kernel",
            expected=f"a Python file {path} defining {' and/or '.join(HANDLER_FUNCTIONS)}",
            fix=f"add {name} to the kernel directory or remove preprocessing.handler",
        )]
    try:
        tree = ast.parse(read_regular(path, MAX_HANDLER_BYTES), filename=str(path))
    except KernelFileError as exc:
        return [Finding("KS008", str(path), "", f"cannot be read: {exc}", expected="a regular Python file",
                        fix="replace it with the handler source")]
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        return [Finding(
            "KS008", str(path), f"line {line}" if line else "", f"is not valid Python: {reason}",
            expected="a Python module", fix="fix the syntax error (python -m py_compile shows it)",
        )]
    defined = {
        node.name for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in HANDLER_FUNCTIONS
    }
    if not defined:
        return [Finding(
            "KS008", str(path), "",
            f"defines neither {' nor '.join(HANDLER_FUNCTIONS)} at module level",
            expected="def preprocess(inputs) and/or def postprocess(outputs), "
            "mapping tensor names to numpy arrays",
            fix="define the function(s), or remove preprocessing.handler from model_metadata.json",
        )]
    return []
