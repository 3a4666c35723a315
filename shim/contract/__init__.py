"""The kernel contract: reading kernels (``kernel``), checking them (``validator``),
reporting (``report``)."""
