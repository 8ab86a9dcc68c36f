"""`vaglio survey` as a Prefect flow: one task per source, retried, so a slow or flaky source
(a hub dataset's card, a network share) neither stops nor serialises the others."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.sources.catalog import Source, load_catalog
from pipeline.sources.survey import survey_source, survey_table, write_survey


@task(
    retries=2, retry_delay_seconds=10, task_run_name="survey:{source.name}", cache_policy=NO_CACHE
)
def survey_one(source: Source, policy: Path | None) -> list[dict]:
    return survey_source(source, policy)


@flow(name="survey", validate_parameters=False)
def survey_flow(catalog: Path, workdir: Path, policy: Path | None = None) -> Path:
    """Survey every source of `catalog`; write the table, report and chart under `workdir`."""
    futures = [survey_one.submit(source, policy) for source in load_catalog(catalog)]
    rows = [row for future in futures for row in future.result()]
    return write_survey(survey_table(rows), workdir)
