"""The installed version, read from the package metadata (pyproject.toml's version)."""

from __future__ import annotations

__all__ = ["version"]


def version() -> str:
    """The installed version of reconcile."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("reconcile")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"
