"""Questions about a manifest: `vaglio sql` (DuckDB over the Parquet shards) against pandas over
the same rows as a NeMo JSONL manifest, the format most speech pipelines hand over.

A synthetic manifest of `--rows` segments in the workdir layout (`shard/*.parquet` and
`shards.json`, read through the same views as `vaglio sql`), and the same rows as JSONL. Each
side answers the same two questions: hours kept per language, and segments dropped per rule
and language. Timed from files on disk to the answer, each in a fresh process, so neither
gains from the other's page cache more than a user's second query would.

    python bench/sql_vs_pandas.py [--rows 2000000] [--shards 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import CACHE, emit
from manifests.schemas import MANIFEST
from manifests.views import SHARD_LIST

LANGUAGES = ["en", "it", "de", "fr", "es", "pl", "nl", "pt"]
REASONS = [None] * 8 + ["pass_disagreement", "known_hallucination", "lang_mismatch", "long_word"]
KEPT_HOURS = (
    "SELECT lang, sum(duration) / 3600 AS hours FROM segments WHERE drop_reason IS NULL "
    "GROUP BY lang ORDER BY lang"
)
DROPS = (
    "SELECT drop_reason, lang, count(*) AS n FROM segments WHERE drop_reason IS NOT NULL "
    "GROUP BY ALL ORDER BY ALL"
)


def _column(name: str, values: dict[str, np.ndarray], n: int) -> pa.Array:
    field = MANIFEST.field(name)
    if name in values:
        return pa.array(values[name], field.type)
    return pa.nulls(n, field.type)


def build(folder: Path, rows: int, shards: int) -> tuple[Path, Path]:
    """The workdir and the JSONL manifest of the same rows (reused when already built)."""
    workdir, jsonl = folder / "workdir", folder / "manifest.jsonl"
    if (workdir / SHARD_LIST).exists() and jsonl.exists():
        return workdir, jsonl
    rng = np.random.default_rng(7)
    (workdir / "shard").mkdir(parents=True, exist_ok=True)
    shard_ids = []
    with jsonl.open("w") as out:
        for index, chunk in enumerate(np.array_split(np.arange(rows), shards)):
            n = len(chunk)
            values = {
                "segment_id": [f"src/rec-{i // 20:07d}.flac#{i % 20:04d}" for i in chunk],
                "recording_id": [f"src/rec-{i // 20:07d}.flac" for i in chunk],
                "source": ["src"] * n,
                "license": ["CC-BY-4.0"] * n,
                "offset": rng.uniform(0, 600, n),
                "duration": rng.uniform(1, 30, n),
                "lang": rng.choice(LANGUAGES, n),
                "text": ["a transcript of about the usual length for a segment"] * n,
                "drop_reason": rng.choice(np.array(REASONS, dtype=object), n),
            }
            table = pa.table([_column(f.name, values, n) for f in MANIFEST], schema=MANIFEST)
            shard_id = f"src-{index:05d}"
            pq.write_table(table, workdir / "shard" / f"{shard_id}.parquet")
            shard_ids.append(shard_id)
            for i in range(n):  # NeMo's manifest keys, one JSON object per line
                row = {
                    "audio_filepath": values["recording_id"][i],
                    "offset": values["offset"][i],
                    "duration": values["duration"][i],
                    "text": values["text"][i],
                    "lang": values["lang"][i],
                    "drop_reason": values["drop_reason"][i],
                }
                out.write(json.dumps(row) + "\n")
    (workdir / SHARD_LIST).write_text(json.dumps(shard_ids))
    return workdir, jsonl


def answer_with_duckdb(workdir: str) -> None:
    from pipeline.query.sql import run_query

    run_query(Path(workdir), KEPT_HOURS)
    run_query(Path(workdir), DROPS)


def answer_with_pandas(jsonl: str) -> None:
    import pandas as pd

    frame = pd.read_json(jsonl, lines=True)
    kept = frame[frame["drop_reason"].isna()]
    kept.groupby("lang")["duration"].sum().div(3600).sort_index()
    dropped = frame[frame["drop_reason"].notna()]
    dropped.groupby(["drop_reason", "lang"]).size().sort_index()


def timed_in_child(function: str, path: Path) -> tuple[float, float]:
    """(seconds, peak MiB) of `function(path)` in a fresh interpreter."""
    code = (
        # libraries load before the clock starts: the query is timed, not the imports
        "import time, resource, pandas, pipeline.query.sql; "
        f"from bench.sql_vs_pandas import {function}; "
        "t = time.perf_counter(); "
        f"{function}({str(path)!r}); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(done[0]), float(done[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--shards", type=int, default=40)
    args = parser.parse_args()
    started = time.perf_counter()
    workdir, jsonl = build(CACHE / f"manifest-{args.rows}", args.rows, args.shards)
    built = time.perf_counter() - started
    duck_s, duck_mib = timed_in_child("answer_with_duckdb", workdir)
    pandas_s, pandas_mib = timed_in_child("answer_with_pandas", jsonl)
    emit(
        "sql_vs_pandas_jsonl",
        rows=args.rows,
        vaglio_sql_s=duck_s,
        pandas_jsonl_s=pandas_s,
        speedup=pandas_s / duck_s,
        vaglio_sql_peak_mib=duck_mib,
        pandas_peak_mib=pandas_mib,
        parquet_mib=sum(p.stat().st_size for p in (workdir / "shard").glob("*")) / 2**20,
        jsonl_mib=jsonl.stat().st_size / 2**20,
        build_s=built,
    )


if __name__ == "__main__":
    main()
