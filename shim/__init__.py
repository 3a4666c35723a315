"""kernelshim: contracts, validator and a generic inference server for model kernels."""

__version__ = "0.1.0"
