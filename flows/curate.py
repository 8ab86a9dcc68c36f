"""`vaglio curate` as a Prefect flow: one task per (stage, shard), retried on failure.

Two flows, both named `curate` in the Prefect UI:
- `curate_flow` takes JSON parameters (paths and a config file as strings), so it can be
  deployed and scheduled (`vaglio schedule add`, `prefect.yaml`); it runs the stages as Prefect
  tasks, on threads, or on a Ray cluster (`engine`).
- `run_curate_flow` is what `vaglio curate` calls with a loaded config and progress bars.
Either runs without a Prefect server (Prefect starts a temporary local one) or against the
server that `PREFECT_API_URL` names. The order of stages and the resume logic are the
library's (`pipeline.run.curate`); this module only makes each shard a Prefect task.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.gpu import gpu_tags
from pipeline.config import CurateConfig, load_config
from pipeline.run.curate import CurationResult, ShardExecutor, StageProgress, ThreadExecutor, curate
from pipeline.run.runner import ShardOutcome
from pipeline.stage import Stage

Engine = Literal["prefect", "threads", "ray"]


@task(
    retries=2, retry_delay_seconds=5, task_run_name="{stage_name}:{shard_id}", cache_policy=NO_CACHE
)
def run_shard(run: Callable[[str], ShardOutcome], stage_name: str, shard_id: str) -> ShardOutcome:
    return run(shard_id)


class PrefectExecutor:
    """Submits each shard of a stage as a Prefect task, as many at once as the stage allows.

    A stage that reserves a GPU tags its task runs `gpu` (see `flows.gpu`)."""

    def __init__(self, workers: int, config: CurateConfig | None = None):
        self.workers = workers
        self.config = config or CurateConfig()

    def map(
        self, stage: Stage, run: Callable[[str], ShardOutcome], shard_ids: list[str]
    ) -> Iterator[ShardOutcome]:
        limit = max(1, min(self.workers, stage.max_parallel_shards))
        tags = gpu_tags(self.config.resources_for(stage.name).num_gpus)
        shard_task = run_shard.with_options(tags=tags) if tags else run_shard
        pending = list(shard_ids)
        running = []
        while pending or running:
            while pending and len(running) < limit:
                running.append(shard_task.submit(run, stage.name, pending.pop(0)))
            done = next(as_completed(running))
            running.remove(done)
            yield done.result()


@flow(name="curate", validate_parameters=False)
def curate_with_progress(
    catalog: Path, workdir: Path, config: CurateConfig, progress: Any = None
) -> CurationResult:
    """`progress` is a `StageProgress`, typed loosely because Prefect models the parameters."""
    return curate(catalog, workdir, config, PrefectExecutor(config.workers, config), progress)


def run_curate_flow(
    catalog: Path, workdir: Path, config: CurateConfig, progress: StageProgress | None = None
) -> CurationResult:
    """Entry point that `vaglio curate` finds through the `vaglio.orchestrators` group."""
    runner = ThreadPoolTaskRunner(max_workers=max(1, config.workers))
    return curate_with_progress.with_options(task_runner=runner)(catalog, workdir, config, progress)


def _curate_with(
    engine: str, catalog: Path, workdir: Path, config: CurateConfig, ray_address: str | None
) -> CurationResult:
    if engine == "ray":
        from flows.ray_engine import RayExecutor, ray_session  # only with `vaglio[ray]`

        with ray_session(ray_address):
            return curate(catalog, workdir, config, RayExecutor(workdir, config))
    executor: ShardExecutor = (
        ThreadExecutor(config.workers)
        if engine == "threads"
        else PrefectExecutor(config.workers, config)
    )
    return curate(catalog, workdir, config, executor)


def _summary(result: CurationResult) -> dict:
    """What a deployed run returns: counts a person can read in the UI."""
    ran = sum(not o.skipped for o in result.outcomes)
    return {
        "workdir": str(result.workdir),
        "shards": sum(len(p.shard_ids) for p in result.plans),
        "shard_tasks_run": ran,
        "shard_tasks_skipped": len(result.outcomes) - ran,
        "refused_files": sum(p.refused_files for p in result.plans),
        "unreadable_sources": [p.source.name for p in result.plans if p.error],
    }


@flow(name="curate")
def curate_flow(
    catalog: str,
    workdir: str,
    config: str | None = None,
    policy: str | None = None,
    engine: Engine = "prefect",
    ray_address: str | None = None,
) -> dict:
    """Curate every openly licensed source of `catalog` into `workdir`; completed shards are
    skipped, so a scheduled run processes only what is new or changed.

    `config` is a pipeline YAML, `policy` a licence policy YAML; `engine` is `prefect` (one task
    per stage × shard, shown in the UI), `threads`, or `ray` (on the cluster at `ray_address`).
    """
    if engine not in get_args(Engine):
        raise ValueError(f"engine: expected one of {get_args(Engine)}, got {engine!r}")
    settings = load_config(Path(config) if config else None)
    if policy:
        settings = dataclasses.replace(settings, license_policy=policy)
    result = _curate_with(engine, Path(catalog), Path(workdir), settings, ray_address)
    return _summary(result)
