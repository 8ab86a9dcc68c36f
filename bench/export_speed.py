"""Export speed: rows/s and MB/s of audio written, per format and for the publish folder build.

Reads a curated workdir (by default the bench corpus, the demo corpus at `--scale`, curated
once into the bench cache) and times each exit from the workdir to finished files, read-back
checks excluded (they are the consumers' readers, not vaglio's writing).

    python -m bench.export_speed [--workdir W] [--scale 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, emit
from manifests.views import connect
from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus
from pipeline.export.publish import ExportFormat, build_publish_folder, export
from pipeline.run.curate import ThreadExecutor, curate


def curated_workdir(scale: int) -> Path:
    workdir = CACHE / f"export-x{scale}"
    if not (workdir / "shards.json").exists():
        catalog = build_demo_corpus(CACHE / f"demo-x{scale}", scale=scale)
        curate(catalog, workdir, CurateConfig(), ThreadExecutor(2))
    return workdir


def warm_up() -> None:
    """Import what the writers import, so import time (seconds for torch) is not timed."""
    import datasets  # noqa: F401
    import huggingface_hub  # noqa: F401
    import lhotse.shar  # noqa: F401


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--scale", type=int, default=1)
    args = parser.parse_args()
    workdir = args.workdir or curated_workdir(args.scale)
    with connect(workdir) as con:
        (rows,) = con.execute("SELECT count(*) FROM segments WHERE drop_reason IS NULL").fetchone()
    warm_up()
    scratch = Path(tempfile.mkdtemp(prefix="vaglio-export-bench-"))
    try:
        started = time.perf_counter()
        build_publish_folder(workdir, scratch / "publish", "bench/export")
        seconds = time.perf_counter() - started
        size = folder_mb(scratch / "publish")
        emit(
            "export_speed",
            format="publish-folder",
            rows=rows,
            seconds=seconds,
            rows_per_s=rows / seconds,
            mb=size,
            mb_per_s=size / seconds,
        )
        for fmt in ExportFormat:
            started = time.perf_counter()
            export(fmt, workdir, scratch / fmt.value)
            seconds = time.perf_counter() - started
            size = folder_mb(scratch / fmt.value)
            emit(
                "export_speed",
                format=fmt.value,
                rows=rows,
                seconds=seconds,
                rows_per_s=rows / seconds,
                mb=size,
                mb_per_s=size / seconds,
            )
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
