"""`vaglio curate` as a Prefect flow: one task per (stage, shard), retried on failure.

Runs without a Prefect server (Prefect starts a temporary local one) or against the server
that `PREFECT_API_URL` names. The order of stages and the resume logic are the library's
(`pipeline.run.curate`); this module only makes each shard a Prefect task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config import CurateConfig
from pipeline.run.curate import CurationResult, StageProgress, curate
from pipeline.run.runner import ShardOutcome
from pipeline.stage import Stage


@task(
    retries=2, retry_delay_seconds=5, task_run_name="{stage_name}:{shard_id}", cache_policy=NO_CACHE
)
def run_shard(run: Callable[[str], ShardOutcome], stage_name: str, shard_id: str) -> ShardOutcome:
    return run(shard_id)


class PrefectExecutor:
    """Submits each shard of a stage as a Prefect task, as many at once as the stage allows."""

    def __init__(self, workers: int):
        self.workers = workers

    def map(
        self, stage: Stage, run: Callable[[str], ShardOutcome], shard_ids: list[str]
    ) -> Iterator[ShardOutcome]:
        limit = max(1, min(self.workers, stage.max_parallel_shards))
        pending = list(shard_ids)
        running = []
        while pending or running:
            while pending and len(running) < limit:
                running.append(run_shard.submit(run, stage.name, pending.pop(0)))
            done = next(as_completed(running))
            running.remove(done)
            yield done.result()


@flow(name="curate", validate_parameters=False)
def curate_flow(
    catalog: Path, workdir: Path, config: CurateConfig, progress: Any = None
) -> CurationResult:
    """`progress` is a `StageProgress`, typed loosely because Prefect models the parameters."""
    return curate(catalog, workdir, config, PrefectExecutor(config.workers), progress)


def run_curate_flow(
    catalog: Path, workdir: Path, config: CurateConfig, progress: StageProgress | None = None
) -> CurationResult:
    """Entry point that `vaglio curate` finds through the `vaglio.orchestrators` group."""
    runner = ThreadPoolTaskRunner(max_workers=max(1, config.workers))
    return curate_flow.with_options(task_runner=runner)(catalog, workdir, config, progress)
