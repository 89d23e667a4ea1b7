"""The ``disentangled`` command line: one thin module per command group."""

from __future__ import annotations

import sys

import typer

from . import data as data_cli
from . import evaluate as evaluate_cli
from . import quickstart as quickstart_cli
from . import report as report_cli
from . import study as study_cli
from . import train as train_cli
from . import visualize as visualize_cli

app = typer.Typer(
    name="disentangled",
    help="Reproduce and extend the study of unsupervised disentanglement (Locatello et al., ICML 2019).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(study_cli.app, name="study")
app.command("quickstart")(quickstart_cli.quickstart)
app.command("train")(train_cli.train)
app.command("evaluate")(evaluate_cli.evaluate)
app.command("visualize")(visualize_cli.visualize)
app.command("report")(report_cli.report)
app.command("list")(train_cli.list_)


def main(argv: list[str] | None = None) -> None:
    """Console entry point.

    The project's own errors (:class:`~disentangled.errors.DisentangledError`: a bad
    parameter, an unknown name, a missing file, a diverged run) become one line,
    ``error: <message>``, and their ``exit_code``; click's usage errors print the usage
    message. Any other exception is a bug and keeps its traceback.
    """
    from ..errors import DisentangledError

    try:
        code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
    except DisentangledError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as err:  # usage errors: a bad option value, a missing argument
        if isinstance(err, _usage_errors()):
            err.show()
            sys.exit(getattr(err, "exit_code", 2))
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


def _usage_errors() -> tuple[type, ...]:
    """The exception classes of click's usage errors: typer's own copy of click (typer >= 0.2x), and click."""
    kinds: list[type] = []
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:
        pass
    try:
        import click

        kinds.append(click.ClickException)
    except ImportError:
        pass
    return tuple(kinds)
