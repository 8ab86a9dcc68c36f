"""`vaglio survey` as a Prefect flow: one task per source, retried, so a slow or flaky source
(a hub dataset's card, a network share) neither stops nor serialises the others. Its
parameters are JSON (paths as strings), so it can be deployed and scheduled."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.sources.catalog import Source, load_catalog
from pipeline.sources.survey import survey_source, survey_table, write_survey


@task(
    retries=2, retry_delay_seconds=10, task_run_name="survey:{source.name}", cache_policy=NO_CACHE
)
def survey_one(source: Source, policy: Path | None) -> list[dict]:
    return survey_source(source, policy)


@flow(name="survey", validate_parameters=False)  # Python callers may pass `Path`s
def survey_flow(
    catalog: str,
    workdir: str,
    policy: str | None = None,
    engine: Literal["prefect", "ray"] = "prefect",
    ray_address: str | None = None,
) -> Path:
    """Survey every source of `catalog`; write the table, report and chart under `workdir`.

    `engine` is `prefect` (a task per source) or `ray` (a Ray task per source, on the cluster at
    `ray_address`), for catalogs whose file headers are many and on shared storage."""
    policy_path = Path(policy) if policy else None
    sources = load_catalog(Path(catalog))
    if engine == "ray":
        from flows.ray_engine import ray_session, survey_on_ray  # only with `vaglio[ray]`

        with ray_session(ray_address):
            rows = survey_on_ray(sources, policy_path)
    elif engine == "prefect":
        futures = [survey_one.submit(source, policy_path) for source in sources]
        rows = [row for future in futures for row in future.result()]
    else:
        raise ValueError(f"engine: expected prefect or ray, got {engine!r}")
    return write_survey(survey_table(rows), Path(workdir))
