"""Runtime smoke test, run during the build: fail the build, not a deployment.

Level 1 runs it as the serving user once the runtime is installed; Level 2 runs it again after
installing a kernel's requirements. It checks that every frozen pin is exactly what is installed
(nothing - a dependency of kernelshim, torch or a kernel's package - moved one), that `pip check`
is clean, that the runtime and the server (its gRPC transport included) import, and that the gpu
variant's onnxruntime really offers the CUDA provider. The image's variant comes from
KERNELSHIM_IMAGE_VARIANT (cpu|gpu) and KERNELSHIM_IMAGE_TORCH (0|1), which Level 1 sets.
"""

import importlib
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

FROZEN_DIR = Path("/opt/kernelshim")
variant = os.environ.get("KERNELSHIM_IMAGE_VARIANT", "cpu")
with_torch = os.environ.get("KERNELSHIM_IMAGE_TORCH", "0") == "1"

files = ["requirements-frozen.txt", f"requirements-frozen-{variant}.txt"]
if with_torch:
    files.append("requirements-frozen-torch.txt")
problems = []
for name in files:
    for line in (FROZEN_DIR / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        package, pinned = line.split("==")
        try:
            installed = version(package)
        except PackageNotFoundError:
            problems.append(f"{package}=={pinned} ({name}) is not installed")
            continue
        if installed.split("+")[0] != pinned:
            problems.append(f"{package}: {name} pins {pinned}, but {installed} is installed")

# grpc, grpc_health.v1 and the gRPC transport: without them the server would quietly serve REST only.
for module in ("numpy", "onnx", "onnxruntime", "shim", "shim.server.main", "shim.contract.validator",
               "grpc", "grpc_health.v1.health_pb2", "shim.server.grpc_transport"):
    importlib.import_module(module)
ort = importlib.import_module("onnxruntime")
providers = ort.get_available_providers()
print(f"onnxruntime {ort.__version__}: {providers}")
if variant == "gpu" and "CUDAExecutionProvider" not in providers:
    problems.append(f"gpu variant, but onnxruntime offers no CUDAExecutionProvider: {providers}")
if with_torch:
    torch = importlib.import_module("torch")
    print(f"torch {torch.__version__}")

check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False)
for line in check.stdout.splitlines():
    # onnxruntime-gpu provides the module kernelshim's "onnxruntime" requirement is about.
    if variant == "gpu" and "requires onnxruntime, which is not installed" in line:
        continue
    if line.strip() and "No broken requirements" not in line:
        problems.append(f"pip check: {line}")

if problems:
    print("runtime smoke test FAILED:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"runtime smoke test passed ({variant}, torch={'yes' if with_torch else 'no'})")
