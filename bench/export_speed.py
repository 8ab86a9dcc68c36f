"""Export speed: rows/s and MB/s of audio written, per format and for the publish folder build.

Reads a curated workdir (by default the bench corpus, the demo corpus at `--scale`, curated
once into the bench cache) and times each exit from the workdir to finished files, read-back
checks excluded (they are the consumers' readers, not vaglio's writing). `--copies N` times it
on N copies of the kept rows under new ids (manifests and dataset files only), so fixed costs
do not hide the rate.

    python -m bench.export_speed [--workdir W] [--scale 1] [--copies 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import CACHE, emit
from manifests.views import SHARD_LIST, connect, current_shards
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


def _renamed(table: pa.Table, suffix: str, old: str, new: str) -> pa.Table:
    for name in ("segment_id", "recording_id", "shard"):
        if name in table.column_names:
            column = table[name]
            if name == "shard":
                column = pc.replace_substring(column, f"/{old}-", f"/{new}-")
            else:
                column = pc.binary_join_element_wise(column, pa.scalar(suffix), "")
            table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def replicate(workdir: Path, copies: int, dest: Path) -> Path:
    """`copies` copies of the workdir's manifests and dataset files, every id made unique."""
    (dest / "shard").mkdir(parents=True)
    (dest / "dataset" / "data").mkdir(parents=True)
    shards = []
    for copy in range(copies):
        for shard in current_shards(workdir):
            new = f"{shard}-c{copy}"
            shards.append(new)
            manifest = pq.read_table(workdir / "shard" / f"{shard}.parquet")
            pq.write_table(
                _renamed(manifest, f"~{copy}", shard, new), dest / "shard" / f"{new}.parquet"
            )
            for data in (workdir / "dataset" / "data").glob(f"{shard}-[0-9]*.parquet"):
                table = _renamed(pq.read_table(data), f"~{copy}", shard, new)
                pq.write_table(table, dest / "dataset" / "data" / data.name.replace(shard, new))
    (dest / SHARD_LIST).write_text(json.dumps(shards))
    return dest


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
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()
    workdir = args.workdir or curated_workdir(args.scale)
    warm_up()
    scratch = Path(tempfile.mkdtemp(prefix="vaglio-export-bench-"))
    if args.copies > 1:
        workdir = replicate(workdir, args.copies, scratch / "workdir")
    with connect(workdir) as con:
        (rows,) = con.execute("SELECT count(*) FROM segments WHERE drop_reason IS NULL").fetchone()
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
