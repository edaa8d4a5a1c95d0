"""The ``pbxfw`` command line (Typer)."""

from pbxfw.cli.main import app, main

__all__ = ["app", "main"]
