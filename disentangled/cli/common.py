"""Shared pieces of the CLI: data set options and printing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

SourceOption = typer.Option(None, "--source", help="official (the published files) or procedural (rendered offline).")
DataDirOption = typer.Option(None, "--data-dir", help="Data directory (default: $DISENTANGLED_DATA or the user cache).")


def dataset_options(source: Optional[str], data_dir: Optional[Path]) -> dict:
    options = {}
    if source is not None:
        options["source"] = source
    if data_dir is not None:
        options["data_dir"] = data_dir
    return options
