"""Errors a user can act on: one line of message plus a hint naming the fix."""

from __future__ import annotations


class CoreError(Exception):
    """Base for every error the CLI and pages show as a plain message (never a traceback)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class StoreLocked(CoreError):
    """The DuckDB file is held by another process (DuckDB allows one writer per file)."""


class StoreCorrupt(CoreError):
    """The DuckDB file is damaged (cut short, overwritten, not a DuckDB file) or cannot be read."""


class StoreTooNew(CoreError):
    """The store's schema (or DuckDB storage format) is newer than this code can read."""


class MigrationFailed(CoreError):
    """A schema migration raised; the store was left as it was."""


class ImportFailed(CoreError):
    """A file could not be imported; `issues` lists (row, message) for each problem found."""

    def __init__(self, message: str, issues: list | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.issues = issues or []


class NotFound(CoreError):
    """A named dataset, model or run does not exist."""
