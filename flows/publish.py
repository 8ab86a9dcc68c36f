"""`vaglio publish` and `vaglio export` as Prefect flows with JSON-able parameters.

A deployment can run them on a schedule after the nightly curation. Building the folder and
uploading it are separate tasks, so a failed upload is retried without building again; the
upload itself resumes where it stopped. The work is the library's (`pipeline.export`).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from pipeline.export.hub import upload
from pipeline.export.hub_folder import Sizing
from pipeline.export.publish import ExportFormat, build_publish_folder, export
from pipeline.query.splits import DEFAULT_RATIOS


@task(cache_policy=NO_CACHE)
def build_task(
    workdir: str,
    out: str,
    repo_id: str,
    policy: str | None,
    ratios: dict[str, float],
    sizing: dict[str, int],
) -> dict:
    built = build_publish_folder(
        Path(workdir),
        Path(out),
        repo_id,
        policy=Path(policy) if policy else None,
        ratios=ratios,
        sizing=Sizing(**sizing),
    )
    return {
        "folder": str(built.path),
        "configs": {c.name: c.rows for c in built.configs},
        "refused": [
            {"source": r.source, "license": r.license, "rows": r.rows, "reason": r.reason}
            for r in built.refusals
        ],
    }


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def upload_task(
    folder: str, repo_id: str, private: bool, revision: str | None, endpoint: str | None
) -> dict:
    done = upload(Path(folder), repo_id, private=private, revision=revision, endpoint=endpoint)
    return {"url": done.url, "commit": done.commit}


@flow(name="publish")
def publish_flow(
    workdir: str,
    repo_id: str,
    out: str | None = None,
    dry_run: bool = False,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    policy: str | None = None,
    ratios: dict[str, float] | None = None,
    sizing: dict[str, int] | None = None,
) -> dict:
    """Build the hub folder (always), then upload it unless `dry_run`."""
    folder = out or str(Path(workdir) / "publish")
    built = build_task(
        workdir, folder, repo_id, policy, ratios or dict(DEFAULT_RATIOS), sizing or {}
    )
    if not dry_run:
        built["uploaded"] = upload_task(folder, repo_id, private, revision, endpoint)
    return built


@flow(name="export")
def export_flow(
    fmt: str,
    workdir: str,
    out: str,
    split: str = "all",
    policy: str | None = None,
    ratios: dict[str, float] | None = None,
    shard_size: int = 1000,
) -> dict[str, int]:
    """`vaglio export FORMAT`: returns lines (nemo) or segments per split."""
    splits = list(DEFAULT_RATIOS) if split == "all" else [split]
    done = export(
        ExportFormat(fmt),
        Path(workdir),
        Path(out),
        splits=splits,
        policy=Path(policy) if policy else None,
        ratios=ratios or dict(DEFAULT_RATIOS),
        shard_size=shard_size,
    )
    return done.counts
