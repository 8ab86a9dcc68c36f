"""What every command shares: the app, the console (stderr) and the common options."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from pipeline.llm.offline_model import DEFAULT_OFFLINE_LLM, OFFLINE_LLMS

console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


class _Commands(TyperGroup):
    """Every command ends an OSError (a read-only or full workdir, a missing permission) with
    one line naming the path instead of a traceback, and Ctrl-C with one line too; what was
    committed before stays."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # `curate` says more (see cli/curation.py); others just stop
            console.print("[red]interrupted[/red]: what was written before stays as it was")
            raise typer.Exit(130) from None
        except OSError as error:
            where = f"{error.filename}: " if error.filename and error.strerror else ""
            message = escape(where + (error.strerror or str(error)))
            console.print(f"[red]error:[/red] {message}", soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Commands,
    help="vaglio: curate openly licensed speech corpora into clean, traceable training data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)


class Engine(str, Enum):
    prefect = "prefect"
    threads = "threads"
    ray = "ray"  # `vaglio[ray]`: every (stage, shard) as a task on a Ray cluster


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
EngineOption = Annotated[
    Engine, typer.Option(help="Run as a Prefect flow, on plain threads, or on a Ray cluster.")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With `--engine ray`: the cluster to join (HOST:PORT, `auto`, ray://…); "
        "default: $RAY_ADDRESS, else a local Ray started for the run.",
        show_default=False,
    ),
]


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def fail(message: str) -> typer.Exit:
    """Print `message` as the one error line of a command; raise what this returns."""
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def require_curation(workdir: Path) -> None:
    """Stop with one line unless `workdir` holds a curation run."""
    from manifests.views import SHARD_LIST

    if not (workdir / SHARD_LIST).exists():
        raise fail(f"{workdir} holds no curation run")


def write_error(error: OSError, path: Path) -> str:
    """One line for an output that could not be written: the path and why, never a traceback
    (a missing folder, a directory in the way, a read-only or full disk)."""
    where = Path(error.filename) if error.filename else path
    if isinstance(error, FileNotFoundError) and not where.parent.is_dir():
        return f"cannot write {where}: the folder {where.parent} does not exist"
    return f"cannot write {where}: {error.strerror or error}"


LocalModel = Enum("LocalModel", {key: key for key in OFFLINE_LLMS}, type=str)
LocalModelOption = Annotated[
    LocalModel,
    typer.Option(
        "--local-model",
        help="The offline model the local server runs: Qwen2.5-Coder-1.5B (1.1 GB; punctuates "
        "and translates English and Italian usefully) or SmolLM2-135M (98 MB, a smoke test).",
    ),
]
DEFAULT_LOCAL_MODEL = LocalModel(DEFAULT_OFFLINE_LLM)
