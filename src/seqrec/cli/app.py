"""The root `seqrec` app: global options, the command groups it registers, and the console entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from seqrec.cli import common, data, export, llm, profiles, runs, sae, search, serve, steer, train
from seqrec.errors import SeqrecError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings=HELP_OPTIONS, help="Train, evaluate and serve sequential recommenders.")

# Each module adds its commands with `register(app)`, in this order (the order of `seqrec --help`).
GROUPS = (data, train, sae, steer, profiles, llm, runs, serve, export, search)


def show_version(value: bool) -> None:
    """`--version`: print `seqrec <version>` and stop."""
    if value:
        print(f"seqrec {common.package_version()}")
        raise typer.Exit()


@app.callback()
def root(ctx: typer.Context,
         quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide progress bars and informational lines; "
                                                                   "results and tables still print.")] = False,
         verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the full traceback of errors that "
                                                                       "are otherwise one line.")] = False,
         version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """Train, evaluate and serve sequential recommenders."""
    if quiet and verbose:
        raise SeqrecError("--quiet and --verbose exclude each other; give one")
    ctx.with_resource(common.output_settings(quiet=quiet, verbose=verbose))


for group in GROUPS:
    group.register(app)


def main() -> None:
    """Console entry point: `SeqrecError` -> one line without traceback (all of it with --verbose), exit code 2."""
    try:
        app()
    except SeqrecError as exc:
        err = Console(stderr=True)
        if common.settings.verbose:
            err.print_exception()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
    finally:
        common.settings.verbose = False
