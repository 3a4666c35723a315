"""In-process model runtimes behind one small interface (see ``base.Runtime``)."""

from shim.runtimes.base import Runtime, RuntimeLoadError, load_runtime

__all__ = ["Runtime", "RuntimeLoadError", "load_runtime"]
