"""Domain errors.

Each error carries where the problem is (file, row, field) so the CLI and the API can show a
user exactly what to fix; only the API maps them to HTTP statuses.
"""

from __future__ import annotations

from pathlib import Path


class RiskMapError(Exception):
    """Base of every error this package raises on purpose."""


class CatalogError(RiskMapError):
    """The source catalog (sources.toml) or a mapping is malformed."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = str(path) if path else None
        super().__init__(f"{path}: {message}" if path else message)


class SourceError(RiskMapError):
    """A source file cannot be read at all (missing, truncated, no CRS, unknown format)."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.row = row
        self.field = field
        where = [str(path)]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}")


class BuildError(RiskMapError):
    """A build was refused or failed; the previous build stays current."""


class NoBuildError(RiskMapError):
    """No current build exists yet."""


class NotFoundError(RiskMapError):
    """A collection or feature that does not exist (for this caller)."""


class BadQueryError(RiskMapError):
    """A request parameter that cannot be understood: the message says which and why."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"parameter '{parameter}': {message}" if parameter else message)


class UnsupportedFormatError(BadQueryError):
    """A response format the resource does not give (oEmbed answers it 501 Not Implemented)."""
