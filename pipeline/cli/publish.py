"""`vaglio publish` and `vaglio export`: the curated corpus leaves the workdir with its licences."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import PolicyOption, Workdir, app, console
from pipeline.export.formats import ExportFormat
from pipeline.query.splits import DEFAULT_RATIOS, SPLITS, check_ratios

if TYPE_CHECKING:
    from pipeline.export.rows import Refusal

RatiosOption = Annotated[
    str,
    typer.Option("--ratios", help="Split shares by recording, the same as the training job's."),
]
_DEFAULT_RATIOS = ",".join(f"{k}={v}" for k, v in DEFAULT_RATIOS.items())
_MB = 10**6


def _ratios(text: str) -> dict[str, float]:
    try:
        pairs = [part.split("=") for part in text.split(",")]
        ratios = {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise typer.BadParameter(f"expected e.g. {_DEFAULT_RATIOS}, got {text!r}") from None
    if set(ratios) != set(SPLITS):
        raise typer.BadParameter(f"give a share >= 0 for each of {', '.join(SPLITS)}")
    try:
        check_ratios(ratios)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return ratios


def _print_refusals(refusals: list[Refusal]) -> None:
    for r in refusals:
        console.print(
            f"[red]✗[/red] not published: {r.rows} rows of {escape(r.source)} "
            f"under {r.license}: {escape(r.reason)}"
        )


def _fail(error: Exception, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(str(error))}")
    return typer.Exit(code)


@app.command("publish")
def publish_command(
    workdir: Workdir,
    repo_id: Annotated[str, typer.Option("--repo-id", help="The hub dataset, ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to commit to (created if new).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build the folder only; upload nothing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to build the folder [default: WORKDIR/publish]."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", envvar="HF_ENDPOINT", help="A self-hosted hub's URL."),
    ] = None,
    policy: PolicyOption = None,
    ratios: RatiosOption = _DEFAULT_RATIOS,
    max_file_mb: Annotated[float, typer.Option(help="Largest Parquet file.")] = 500,
    min_file_mb: Annotated[
        float, typer.Option(help="Smallest file when splitting for workers.")
    ] = 50,
    min_files: Annotated[int, typer.Option(help="Files per split wanted for streaming.")] = 20,
    row_group_mb: Annotated[float, typer.Option(help="Largest row group (the viewer's).")] = 100,
) -> None:
    """Build the hub folder of a curated workdir (kept rows, card, licences), then upload it.

    The folder is always built offline: Parquet files per config (a language, or a translation
    direction), README.md (the card, with every source's licence and attribution) and
    LICENSES.md. Rows whose licence the current policy refuses are left out, with the reason.
    Without `--dry-run` it is uploaded with the token from `HF_TOKEN` or `hf auth login`;
    running again resumes an interrupted upload.

    Examples:

        vaglio publish -w work --repo-id me/open-speech --dry-run --out /tmp/open-speech

        HF_TOKEN=… vaglio publish -w work --repo-id me/open-speech --private
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from licenses import PolicyError
    from pipeline.export.hub_folder import Sizing
    from pipeline.export.publish import build_publish_folder
    from pipeline.export.rows import ExportError
    from pipeline.extras import MissingExtraError

    folder = out or workdir / "publish"
    sizing = Sizing(
        int(max_file_mb * _MB), int(min_file_mb * _MB), min_files, int(row_group_mb * _MB)
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("building the folder", total=None)
            built = build_publish_folder(
                workdir,
                folder,
                repo_id,
                policy=policy,
                ratios=_ratios(ratios),
                sizing=sizing,
                progress=lambda rows: progress.advance(bar, rows),
            )
    except (ExportError, PolicyError, MissingExtraError) as error:
        raise _fail(error) from None
    _print_refusals(built.refusals)
    table = Table(title=f"{folder}", show_lines=False)
    for header in ("config", "rows per split", "files", "hours", "licences"):
        table.add_column(header)
    for c in built.configs:
        table.add_row(
            c.name,
            ", ".join(f"{s}: {n}" for s, n in sorted(c.rows.items())),
            str(sum(len(f) for f in c.files.values())),
            f"{sum(c.seconds.values()) / 3600:.3f}",
            ", ".join(sorted(c.licenses)),
        )
    console.print(table)
    console.print(f"card: {folder / 'README.md'}")
    if dry_run:
        console.print("dry run: nothing uploaded")
        return
    from pipeline.export.hub import PublishError, upload

    try:
        uploaded = upload(folder, repo_id, private=private, revision=revision, endpoint=endpoint)
    except PublishError as error:
        raise _fail(error, 1) from None
    console.print(
        f"published {uploaded.url} (commit {uploaded.commit}, token from {uploaded.token_source})"
    )


def _read_back(fmt: ExportFormat, out: Path, splits: list[str]) -> str:
    """Read the export with its consumer's reader; returns a line saying what was read."""
    if fmt is ExportFormat.lhotse_shar:
        from pipeline.export.lhotse_shar import check_lhotse_shar

        read = sum(len(check_lhotse_shar(out / s)) for s in splits)
        return f"read back {read} cuts with lhotse CutSet.from_shar"
    try:
        from pipeline.export.nemo import check_nemo
        from pipeline.export.nemo_tarred import check_nemo_tarred, nemo_paths

        if fmt is ExportFormat.nemo:
            return f"read back {len(check_nemo(out))} lines with NeMo's LazyNeMoIterator"
        read = sum(len(check_nemo_tarred(out / s)) for s in splits)
    except ImportError:
        return "not read back: NeMo is not installed (pip install 'vaglio[nemo]')"
    manifests, tars = nemo_paths(out / splits[0])
    return (
        f"read back {read} lines with NeMo's LazyNeMoTarredIterator\n"
        f"  manifest_filepath: {manifests}\n  tarred_audio_filepaths: {tars}"
    )


@app.command("export")
def export_command(
    fmt: Annotated[
        ExportFormat, typer.Argument(metavar="FORMAT", help="nemo, nemo-tarred or lhotse-shar.")
    ],
    workdir: Workdir,
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write; an earlier export there is replaced.")
    ],
    split: Annotated[str, typer.Option("--split", help="train, dev, test or all.")] = "all",
    policy: PolicyOption = None,
    ratios: RatiosOption = _DEFAULT_RATIOS,
    shard_size: Annotated[int, typer.Option(min=1, help="Segments per tar (tarred, Shar).")] = 1000,
    check: Annotated[
        bool, typer.Option(help="Read the export back with NeMo's or Lhotse's reader.")
    ] = True,
) -> None:
    """Export the kept rows for NeMo or Lhotse, split by recording like the training job.

    `nemo`: `<split>.jsonl` manifests (Canary fields included; a translation is a line of its
    own) and `audio/*.flac`. `nemo-tarred`: `<split>/audio_N.tar` with
    `<split>/sharded_manifests/manifest_N.json`. `lhotse-shar`: `<split>/cuts.NNNNNN.jsonl.gz`
    and `recording.NNNNNN.tar`, cut ids = segment ids.

    Examples:

        vaglio export nemo -w work --out exports/nemo --split test

        vaglio export lhotse-shar -w work --out exports/shar
    """
    from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from licenses import PolicyError
    from pipeline.export.publish import export
    from pipeline.export.rows import ExportError
    from pipeline.extras import MissingExtraError

    if split != "all" and split not in SPLITS:
        raise _fail(ValueError(f"--split must be one of {', '.join(SPLITS)} or all, not {split!r}"))
    splits = list(SPLITS) if split == "all" else [split]
    try:
        with Progress(
            TextColumn("exporting"),
            MofNCompleteColumn(),
            TextColumn("segments"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            bar = progress.add_task("export", total=None)
            done = export(
                fmt,
                workdir,
                out,
                splits=splits,
                policy=policy,
                ratios=_ratios(ratios),
                shard_size=shard_size,
                progress=lambda s: progress.advance(bar),
            )
        _print_refusals(done.refusals)
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(done.counts.items())) or "nothing"
        console.print(f"{fmt.value} → {out} ({counts})")
        if check and done.counts:
            console.print(_read_back(fmt, Path(out), sorted(done.counts)))
    except (ExportError, PolicyError, MissingExtraError) as error:
        raise _fail(error) from None
