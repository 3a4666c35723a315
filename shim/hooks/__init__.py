"""The pre-commit hooks: find the kernels a commit touches and check them, with a result cache."""
