"""What every command shares: the app, the console (stderr) and the common options."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="vaglio: curate openly licensed speech corpora into clean, traceable training data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


class Engine(str, Enum):
    prefect = "prefect"
    threads = "threads"


Workdir = Annotated[
    Path, typer.Option("--workdir", "-w", help="Folder for every output of the run.")
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="Your licence policy YAML instead of vaglio's `licenses/policy.yaml`.",
        show_default=False,
    ),
]
EngineOption = Annotated[Engine, typer.Option(help="Run as a Prefect flow, or on plain threads.")]


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def write_error(error: OSError, path: Path) -> str:
    """One line for an output that could not be written: the path and why, never a traceback
    (a missing folder, a directory in the way, a read-only or full disk)."""
    where = Path(error.filename) if error.filename else path
    if isinstance(error, FileNotFoundError) and not where.parent.is_dir():
        return f"cannot write {where}: the folder {where.parent} does not exist"
    return f"cannot write {where}: {error.strerror or error}"
