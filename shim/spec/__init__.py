"""The kernel's specification: the bottom layer every other package builds on.

The typed kernel (``Kernel``, ``TensorSpec``, ``Batching``, ``Tolerance``), the Open Inference
Protocol datatypes, the names of a kernel's files and the JSON Schemas of the contracts. It imports
nothing from the layers above it (protocol, runtimes, policy, contract, hooks, images, iac, server,
cli); ``tests/test_layering.py`` fails on any upward import. Kept free of imports here so that
``shim.spec.layout`` stays cheap for the pre-commit hooks.
"""
