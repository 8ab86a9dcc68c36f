"""The curation run: catalog -> licence check -> shards -> every stage over every shard.

This module decides the order; an executor decides where each (stage, shard) runs: threads
here, Prefect tasks in `flows/`. Either way each stage finishes on every shard before the
next stage starts, so cross-shard steps (duplicate detection, speakers across recordings) see
complete inputs. A run holds
the workdir's lock throughout, starts by removing what dead runs left half-written, and ends
by removing the dataset files that no current shard names any more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from manifests.views import SHARD_LIST
from pipeline.asr.preflight import check_model
from pipeline.audio.duplicates import mark_duplicates
from pipeline.config import CurateConfig
from pipeline.run.lock import workdir_lock
from pipeline.run.plan import SourcePlan, plan_sources
from pipeline.run.runner import (
    ShardOutcome,
    StageRunner,
    WorkdirError,
    atomic_write_text,
    remove_stale_temporaries,
)
from pipeline.sources.catalog import load_catalog
from pipeline.speakers.corpus import link_speakers, voices_path
from pipeline.stage import Stage
from pipeline.stages.filter import Filter
from pipeline.stages.pass1 import Pass1
from pipeline.stages.pass2 import Pass2
from pipeline.stages.punctuate import Punctuate
from pipeline.stages.quality import Quality
from pipeline.stages.segment import Segment
from pipeline.stages.shard import Shard, remove_unnamed_dataset_files
from pipeline.stages.speakers import Speakers
from pipeline.stages.standardise import Standardise
from pipeline.stages.translate import Translate


class ShardExecutor(Protocol):
    """Runs one stage over many shards and yields each outcome as it completes."""

    def map(
        self, stage: Stage, run: Callable[[str], ShardOutcome], shard_ids: list[str]
    ) -> Iterable[ShardOutcome]: ...


class ThreadExecutor:
    """Shards of a stage in a thread pool: decoding and ONNX/CTranslate2 release the GIL."""

    def __init__(self, workers: int):
        self.workers = workers

    def map(
        self, stage: Stage, run: Callable[[str], ShardOutcome], shard_ids: list[str]
    ) -> Iterator[ShardOutcome]:
        workers = max(1, min(self.workers, stage.max_parallel_shards))
        pool = ThreadPoolExecutor(workers, thread_name_prefix=stage.name)
        try:
            for future in as_completed([pool.submit(run, s) for s in shard_ids]):
                yield future.result()
        finally:  # on an error or an interrupt, queued shards are dropped, not run
            pool.shutdown(wait=False, cancel_futures=True)


class StageProgress(Protocol):
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, outcome: ShardOutcome) -> None: ...


@dataclass(frozen=True)
class CurationResult:
    workdir: Path
    plans: list[SourcePlan]
    outcomes: list[ShardOutcome]


def build_stages(config: CurateConfig) -> list[Stage]:
    """Every stage, each checking its settings as it is built, and every ASR model checked
    against this machine: what cannot work is told before the first shard, not hours in."""
    models = {"pass1.asr": config.pass1.asr, "pass1.lid": config.pass1.lid}
    for where, model in (models | {"pass2.asr": config.pass2.asr}).items():
        check_model(model, where)
    return [
        Standardise(config.standardise),
        Segment(config.segment),
        Pass1(config.pass1),
        Pass2(config.pass2),
        Quality(config.quality),
        Filter(config.filter),
        Speakers(config.speakers),
        Punctuate(config.punctuate),
        Translate(config.translate),
        Shard(config.shard),
    ]


def curate(
    catalog: Path,
    workdir: Path,
    config: CurateConfig,
    executor: ShardExecutor,
    progress: StageProgress | None = None,
) -> CurationResult:
    """Run every stage over every shard of every allowed source; completed shards are skipped."""
    workdir = Path(workdir)
    stages = build_stages(config)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WorkdirError(f"cannot create {workdir}: {error.strerror}") from None
    with workdir_lock(workdir):
        remove_stale_temporaries(workdir)
        return _curate_locked(catalog, workdir, config, stages, executor, progress)


def _curate_locked(
    catalog: Path,
    workdir: Path,
    config: CurateConfig,
    stages: list[Stage],
    executor: ShardExecutor,
    progress: StageProgress | None,
) -> CurationResult:
    policy = Path(config.license_policy) if config.license_policy else None
    plans = plan_sources(load_catalog(catalog), workdir, config.files_per_shard, policy)
    shard_ids = [s for plan in plans for s in plan.shard_ids]
    atomic_write_text(json.dumps(shard_ids), workdir / SHARD_LIST)
    runner = StageRunner(workdir)
    outcomes = []
    for stage in stages:
        if progress:
            progress.start(stage.name, len(shard_ids))
        for outcome in executor.map(stage, lambda s, st=stage: runner.run(st, s), shard_ids):
            outcomes.append(outcome)
            if progress:
                progress.advance(outcome)
        if isinstance(stage, Standardise):
            mark_duplicates(workdir, [workdir / stage.name / f"{s}.parquet" for s in shard_ids])
        if isinstance(stage, Speakers):
            voices = [voices_path(workdir, stage.name, s) for s in shard_ids]
            link_speakers(workdir, voices, config.speakers.same_speaker_across)
    remove_unnamed_dataset_files(workdir)
    return CurationResult(workdir, plans, outcomes)
