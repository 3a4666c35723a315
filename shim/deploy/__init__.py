"""``shim deploy``: one command from a kernel to a gated, applied endpoint (composes contract,
images and iac; the CLI is a thin layer over :mod:`shim.deploy.pipeline`)."""
