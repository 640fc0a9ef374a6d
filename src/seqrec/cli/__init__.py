"""The `seqrec` command line: a thin Typer app, one module per command group."""

from seqrec.cli.app import app, main

__all__ = ["app", "main"]
