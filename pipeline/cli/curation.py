"""`vaglio curate` and `vaglio demo`: run the stages with progress bars, then summarise."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import signal
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import (
    DEFAULT_LOCAL_MODEL,
    Engine,
    EngineOption,
    LocalModelOption,
    PolicyOption,
    RayAddressOption,
    Workdir,
    app,
    console,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from pipeline.llm import LlmConfig
    from pipeline.run.curate import CurationResult
    from pipeline.run.plan import SourcePlan
    from pipeline.run.runner import ShardOutcome


class RichStageProgress:
    """One progress bar per stage, advanced as shards finish (skipped ones included)."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.bars: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.bars[stage] = self.progress.add_task(stage, total=total)

    def advance(self, outcome: ShardOutcome) -> None:
        self.progress.advance(self.bars[outcome.stage])
        if outcome.redone_because:
            self.progress.console.print(
                f"[yellow]![/yellow] {outcome.stage}:{outcome.shard_id} redone, its earlier "
                f"output was damaged: {escape(outcome.redone_because)}",
                soft_wrap=True,
            )

    def finished(self, workdir: Path) -> str:
        """Shards committed per stage started, e.g. 'standardise 6/6, segment 2/6': counted
        from the markers on disk, which may be ahead of the bars."""
        counts = []
        for task in self.progress.tasks:
            total = int(task.total or 0)
            done = len(list((workdir / task.description).glob("*.done.json")))
            counts.append(f"{task.description} {min(done, total)}/{total}")
        return ", ".join(counts)


@contextlib.contextmanager
def stop_on_interrupt(workdir: Path, progress: RichStageProgress):
    """Ctrl-C (or SIGTERM) stops the run at once: no new shard starts and nothing more is
    committed; a write in flight finishes, nothing half-written stays, and the user learns
    what finished and how to go on. Shards still computing are abandoned, not waited for."""

    from pipeline.run.runner import close_writes

    def stop(signum: int, frame) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        close_writes()
        for tmp in Path(workdir).rglob(f".*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
        progress.progress.stop()
        finished = progress.finished(Path(workdir)) or "nothing yet"
        console.print(
            f"[red]interrupted[/red] · finished and kept: {finished}"
            "\nrun the same command again to go on from where this stopped.",
            soft_wrap=True,
        )
        # Exit hooks (a temporary Prefect server) get a few seconds; worker threads none.
        hooks = threading.Thread(target=atexit._run_exitfuncs, daemon=True)
        hooks.start()
        hooks.join(timeout=5)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread (a test runner's worker, say)
        return
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _orchestrator(engine: Engine, ray_address: str | None = None):
    if ray_address and engine is not Engine.ray:
        raise typer.BadParameter("--ray-address needs --engine ray", param_hint="--ray-address")
    if ray_address:
        os.environ["RAY_ADDRESS"] = ray_address  # where the `ray` engine connects
    if engine is Engine.threads:
        from pipeline.run.curate import ThreadExecutor, curate

        return lambda catalog, workdir, config, progress: curate(
            catalog, workdir, config, ThreadExecutor(config.workers), progress
        )
    from importlib.metadata import entry_points

    # Progress bars say what happens; Prefect's own logs and telemetry stay quiet.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    (found,) = entry_points(group="vaglio.orchestrators", name=engine.value)
    return found.load()


def run_curation(
    catalog: Path,
    workdir: Path,
    config_path: Path | None,
    engine: Engine,
    policy: Path | None = None,
    ray_address: str | None = None,
) -> CurationResult:
    """Load config, run the stages with progress bars, print the summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from licenses import PolicyError
    from pipeline.config import ConfigError, load_config
    from pipeline.extras import MissingExtraError
    from pipeline.llm import LlmRequestError
    from pipeline.run.curate import build_stages
    from pipeline.run.lock import WorkdirBusy, workdir_lock
    from pipeline.sources.catalog import CatalogError, load_catalog
    from pipeline.stage import StageConfigError

    try:
        config = load_config(config_path)
        load_catalog(catalog)  # a broken catalog is told at once, before any engine starts
        build_stages(config)  # and so are settings that cannot work together, or here
        if policy is not None:
            config = dataclasses.replace(config, license_policy=str(policy))
        orchestrate = _orchestrator(engine, ray_address)
        columns = (
            TextColumn("{task.description:>12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards"),
            TimeElapsedColumn(),
        )
        workdir.mkdir(parents=True, exist_ok=True)
        with workdir_lock(workdir), Progress(*columns, console=console) as progress:
            stages = RichStageProgress(progress)
            with stop_on_interrupt(workdir, stages):
                result = orchestrate(catalog, workdir, config, stages)
    except WorkdirBusy as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(3) from None
    except (CatalogError, ConfigError, StageConfigError, MissingExtraError, PolicyError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    except LlmRequestError as error:
        console.print(
            f"[red]error:[/red] {escape(str(error))}\nCompleted shards are kept: run the same "
            "command again to go on from where this stopped."
        )
        raise typer.Exit(1) from None
    print_summary(result, config.punctuate.llm)
    return result


def print_plan(plan: SourcePlan) -> None:
    """One line per source: what is processed, what is refused and why."""
    name = plan.source.name
    if plan.error:
        console.print(f"[red]✗[/red] {name}: cannot be read: {escape(plan.error)}")
        return
    for text, verdict in plan.verdicts.items():
        if not verdict.allowed:
            files = plan.files_by_licence[text]
            which = f"{files} files under licence" if files else "licence"
            console.print(
                f"[red]✗[/red] {name}: refused {which} {escape(repr(text))}: "
                f"{escape(verdict.reason)}"
            )
    if plan.source.kind == "metadata":
        if any(v.allowed for v in plan.verdicts.values()):
            console.print(f"· {name}: metadata only (no audio), see `vaglio survey`")
    elif plan.planned_files:
        licences = ", ".join(sorted({str(v.spdx_id) for v in plan.verdicts.values() if v.allowed}))
        quarantined = f", {plan.quarantined} quarantined" if plan.quarantined else ""
        console.print(
            f"[green]✓[/green] {name}: {licences}, {plan.planned_files} files in "
            f"{len(plan.shard_ids)} shards{quarantined}"
        )


def print_summary(result: CurationResult, pnc_llm: LlmConfig | None = None) -> None:
    from rich.table import Table

    from pipeline.run.summary import summarize
    from pipeline.text.pnc import decoding_note

    for plan in result.plans:
        print_plan(plan)
    summary = summarize(result.workdir)
    ran = sum(not o.skipped for o in result.outcomes)
    console.print(
        f"shard tasks run: {ran}, skipped as already complete: {len(result.outcomes) - ran}"
    )
    table = Table(title="curation summary", show_header=False)
    table.add_row("recordings", str(summary.recordings))
    table.add_row("hours in", f"{summary.hours_in:.3f}")
    for reason, count in summary.quarantined.items():
        table.add_row(f"  quarantined: {reason}", str(count))
    table.add_row("  exact duplicates", str(summary.duplicates))
    table.add_row("  no speech found", str(summary.without_speech))
    table.add_row("segments", str(summary.segments))
    table.add_row("segments kept", str(summary.segments_kept))
    table.add_row("hours kept", f"{summary.hours_kept:.3f}")
    for reason, (count, hours) in summary.dropped.items():
        table.add_row(f"  dropped: {reason}", f"{count} segments, {hours:.3f} h")
    for source, (speech, _, coverage) in summary.speech_coverage.items():
        share = "no speech" if coverage is None else f"{coverage:.1%} of {speech:.3f} h"
        table.add_row(f"speech coverage: {source}", share)
    if pnc_llm is not None:
        table.add_row("punctuation decoding", decoding_note(pnc_llm))
    for status, count in summary.punctuation.items():
        table.add_row(f"punctuation: {status}", f"{count} segments")
    for (lang, status), count in summary.written_forms.items():
        table.add_row(f"written form ({lang}): {status}", f"{count} segments")
    for (lang, outcome), count in summary.translations.items():
        table.add_row(f"translation to {lang}: {outcome}", f"{count} segments")
    for outcome, count in summary.word_timings.items():
        table.add_row(f"word timings: {outcome}", f"{count} segments")
    for split, (recordings, speakers) in summary.splits.items():
        table.add_row(f"split {split}", f"{recordings} recordings, {speakers} speakers")
    if summary.shared_speakers:
        table.add_row(
            "splits share speakers",
            f"{summary.shared_speakers} (every recording shares a voice: split by recording)",
        )
    console.print(table)


@app.command("curate")
def curate_command(
    catalog: Annotated[Path, typer.Argument(help="Catalog YAML listing the sources.")],
    workdir: Workdir,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML.")] = None,
    engine: EngineOption = Engine.prefect,
    policy: PolicyOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Curate every source of a catalog whose licence is open.

    Stages: standardise (16 kHz mono, checksums, quarantine), segment (Silero VAD),
    pass1 (language gate, timed transcript), pass2 (utterances re-transcribed on their own),
    filter (hallucinations, language, pass disagreement), shard (Parquet with audio).
    Refused sources are listed with the reason. Re-running on the same workdir skips
    completed shards; a changed config re-runs only the stages it affects.

    `--engine ray --ray-address HOST:PORT` runs every stage × shard on a Ray cluster whose
    nodes all see WORKDIR at the same path (see the README, Scheduling and clusters).
    """
    run_curation(catalog, workdir, config, engine, policy, ray_address)


@app.command("demo")
def demo_command(
    workdir: Workdir,
    engine: EngineOption = Engine.prefect,
    llm: Annotated[
        bool,
        typer.Option(
            "--llm",
            help="Also punctuate and translate (English <-> Italian) with an offline model on "
            "a local CPU server (the llm-cpu extra).",
        ),
    ] = False,
    local_model: LocalModelOption = DEFAULT_LOCAL_MODEL,
) -> None:
    """Synthesise a small demo corpus with espeak-ng and curate it.

    English and Italian speech with pauses, a long file, a silent, a corrupt, a truncated
    and a duplicated file, a German file its source does not declare, a NeMo manifest whose
    windows bring their own transcripts, and a non-commercial source that must be refused.
    Also writes the source survey and the curation report. With --llm, PnC and translation
    run through a real model on a local server, and the report counts what the guards kept.

    Examples: vaglio demo -w demo · vaglio demo --llm -w demo
    """
    from pipeline.demo_corpus import build_demo_corpus
    from pipeline.extras import MissingExtraError
    from pipeline.llm.demo_config import local_llm_config
    from pipeline.llm.local_server import LocalServerError
    from pipeline.llm.offline_model import OFFLINE_LLMS
    from pipeline.run.report import write_report
    from pipeline.sources.catalog import load_catalog
    from pipeline.sources.survey import survey_sources, write_survey

    console.print("building the demo corpus with espeak-ng…")
    catalog = build_demo_corpus(workdir / "corpus")

    try:
        with local_llm_config(workdir, local_model.value) if llm else nullcontext() as config:
            run_curation(catalog, workdir, config, engine)
    except (MissingExtraError, LocalServerError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    caveat = OFFLINE_LLMS[local_model.value].caveat
    if llm and caveat:
        console.print(f"note: {caveat}")
    survey = write_survey(survey_sources(load_catalog(catalog)), workdir)
    report = write_report(workdir)
    program = sys.argv[0] if Path(sys.argv[0]).name == "vaglio" else "vaglio"
    console.print(
        f"\nresults: {workdir}/dataset/data/*.parquet (audio + text), "
        f"manifests in {workdir}/shard/\nreport: {report}/report.html · "
        f"survey: {survey}/report.md",
        soft_wrap=True,
    )
    console.print(
        f'try:\n  {program} sql "SELECT lang, count(*) AS segments, '
        "round(sum(duration)/60, 1) AS minutes FROM segments "
        f'WHERE drop_reason IS NULL GROUP BY lang" --workdir {workdir}',
        soft_wrap=True,
    )
