"""diamond-risk-map: risk layers for communities affected by diamond mining."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diamond-risk-map")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
