"""Errors the CLI turns into one clear line and an exit code instead of a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """The command was called wrongly (missing path, bad option value): exit code 2."""

    exit_code = 2


class CommandFailed(Exception):
    """The command ran but could not do its job for a reason outside the input's findings."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
