"""Names that define a kernel directory's layout.

Kept in a module with no imports so the pre-commit hooks can find kernels (walk up to
``model_metadata.json``) without loading numpy, onnx or jsonschema.
"""

from __future__ import annotations

METADATA_FILE = "model_metadata.json"
REQUIREMENTS_FILE = "requirements.txt"
SAMPLES_DIR = "samples"
#: Marker `shim init` writes where only a person can supply the value; validation fails until replaced.
PLACEHOLDER = "FILL_ME"
