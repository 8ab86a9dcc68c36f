"""`vaglio explore` on a large workdir: how long until the Segments page's first page is served,
from a cold start, and what the other pages cost.

A synthetic manifest of `--rows` segments in the workdir layout (`shard/*.parquet` and
`shards.json`, no audio), with the speakers stage's output (`speakers/*.parquet`, no voice
embeddings, and `speaker_clusters.parquet`) so that the `segments` view's joins have rows to
join. First the parts of a cold start: the wall seconds of `vaglio --help` (`help_s`), the CPU
seconds a fresh process spends importing the CLI and the explorer, and `create_app` in this
process (`open_s`). Then the workdir is opened as a user opens it, `--starts` times (median):
`vaglio explore --port 0` in a fresh process, the clock running from the process's start until
its URL is printed (`ready_s`) and until the first page of Segments has come back over HTTP
(with the CPU seconds the process spent until then, a figure that other work on a shared
machine inflates far less). Then, over HTTP to the last one, each as a user's browser asks for
it: the filters' values (one pass over the segments, fetched by the page once shown), the
Overview's figures (fetched the same way), a page sorted by duration, one sorted by a speaker
column, one filtered by language and a text search, a typed WHERE (the sealed views), the same
sorted, one on a speaker column, page 1000, one segment's page, and the drops to listen to.
Each page includes its count of matching rows; beside its wall time, the CPU seconds the server
spent on it (`*_cpu_s`, all threads).

    python -m bench.explore_first_page [--rows 10000000] [--shards 100] [--workdir DIR]
        [--starts 5] [--start-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import CACHE, emit
from manifests.schemas import MANIFEST, SPEAKER_CLUSTERS, SPEAKERS
from manifests.views import SHARD_LIST, SPEAKER_CLUSTERS_FILE

LANGUAGES = ["en", "it", "de", "fr", "es", "pl", "nl", "pt"]
REASONS = [None] * 8 + ["pass_disagreement", "known_hallucination", "lang_mismatch", "long_word"]
SENTENCES = [
    f"the {w} train to the city was {n} minutes late today" for w in
    ("early", "late", "slow", "fast", "last") for n in range(10)
]  # fmt: skip


def _padded(numbers: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")


def _shard(first: int, n: int, rng: np.random.Generator) -> pa.Table:
    """`n` manifest rows from row number `first`: 20 segments a recording."""
    numbers = np.arange(first, first + n)
    recording = pc.binary_join_element_wise("src/rec-", _padded(numbers // 20, 8), ".flac", "")
    values = {
        "segment_id": pc.binary_join_element_wise(recording, "#", _padded(numbers % 20, 4), ""),
        "recording_id": recording,
        "source": pa.array(["src"] * n),
        "license": pa.array(rng.choice(["CC-BY-4.0", "CC0-1.0"], n)),
        "offset": pa.array((numbers % 20) * 30.0),
        "duration": pa.array(rng.uniform(1, 30, n)),
        "lang": pa.array(rng.choice(LANGUAGES, n)),
        "text": pa.array(rng.choice(SENTENCES, n)),
        "text_pass1": pa.array(rng.choice(SENTENCES, n)),
        "pass_wer": pa.array(rng.uniform(0, 1, n), pa.float32()),
        "drop_reason": pa.array(rng.choice(np.array(REASONS, dtype=object), n), pa.string()),
    }
    return _with_nulls(values, MANIFEST, n)


def _with_nulls(values: dict[str, pa.Array], schema: pa.Schema, n: int) -> pa.Table:
    columns = [
        values[f.name].cast(f.type) if f.name in values else pa.nulls(n, f.type) for f in schema
    ]
    return pa.table(columns, schema=schema)


def _speakers(shard: pa.Table, rng: np.random.Generator) -> pa.Table:
    """The speakers stage's rows for `shard`: one or two speakers a recording, who speaks in
    each kept row (null in a dropped one); no voice embeddings (1 KiB a row, read by no
    page but a segment's own)."""
    n = len(shard)
    kept = pc.is_null(shard["drop_reason"])
    values = {
        "segment_id": shard["segment_id"],
        "recording_id": shard["recording_id"],
        "speech_s": pc.multiply(shard["duration"], 0.9),
        "speaker": pc.if_else(kept, pa.array(rng.integers(0, 2, n), pa.int32()), None),
        "speaker_share": pc.if_else(kept, pa.array(rng.uniform(0.5, 1, n), pa.float32()), None),
        "n_speakers": pa.array(np.full(n, 2), pa.int32()),
    }
    return _with_nulls(values, SPEAKERS, n)


def _clusters(recordings: pa.Array, rng: np.random.Generator) -> pa.Table:
    """`speaker_clusters.parquet`: each recording's two speakers, a split per recording."""
    recording = pa.concat_arrays([recordings, recordings])
    n = len(recordings)
    speaker = pa.array(np.repeat([0, 1], n), pa.int32())
    split = np.tile(rng.choice(["train", "dev", "test"], n, p=[0.9, 0.05, 0.05]), 2)
    values = {
        "recording_id": recording,
        "speaker": speaker,
        "speaker_cluster": pc.binary_join_element_wise(
            recording, "#", pc.cast(speaker, pa.string()), ""
        ),
        "split_group": recording,
        "split": pa.array(split),
    }
    return _with_nulls(values, SPEAKER_CLUSTERS, 2 * n)


def build(workdir: Path, rows: int, shards: int) -> Path:
    """The synthetic workdir, with the speakers stage's output (reused when already built)."""
    if (workdir / SHARD_LIST).exists():
        return workdir
    rng = np.random.default_rng(7)
    for stage in ("shard", "speakers"):
        (workdir / stage).mkdir(parents=True, exist_ok=True)
    shard_ids, recordings = [], []
    for index, chunk in enumerate(np.array_split(np.arange(rows), shards)):
        shard_id = f"src-{index:05d}"
        table = _shard(int(chunk[0]), len(chunk), rng)
        pq.write_table(table, workdir / "shard" / f"{shard_id}.parquet")
        pq.write_table(_speakers(table, rng), workdir / "speakers" / f"{shard_id}.parquet")
        recordings.append(pc.unique(table["recording_id"]))
        shard_ids.append(shard_id)
    clusters = _clusters(pa.concat_arrays(recordings), rng)
    pq.write_table(clusters, workdir / SPEAKER_CLUSTERS_FILE)
    (workdir / SHARD_LIST).write_text(json.dumps(shard_ids))
    return workdir


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _imports_cpu_seconds(root: Path, env: dict[str, str]) -> float:
    """CPU seconds a fresh process spends importing the CLI and the explorer."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = "import pipeline.cli, explorer.app"
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _open_seconds(workdir: Path) -> float:
    """`create_app` in this process: the views opened, nothing scanned yet."""
    from fastapi.testclient import TestClient

    from explorer.app import create_app

    started = time.perf_counter()
    app = create_app(workdir)
    opened = time.perf_counter() - started
    with TestClient(app):  # its lifespan closes the store
        return opened


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _help_seconds(root: Path, env: dict[str, str]) -> float:
    """Wall seconds of `vaglio --help` in a fresh process."""
    command = [sys.executable, "-m", "pipeline.cli", "--help"]
    started = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


@contextlib.contextmanager
def _explore(workdir: Path, root: Path, env: dict[str, str]) -> Iterator[tuple[dict, str, int]]:
    """`vaglio explore --port 0` in a fresh process, timed from its start until its URL is
    printed and until the first page of Segments has come back; stopped with Ctrl-C after.
    Yields (the timings, its URL, its pid)."""
    command = [sys.executable, "-m", "pipeline.cli", "explore", "-w", str(workdir), "-p", "0"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        timings = {"ready_s": time.perf_counter() - started}
        url = line.split()[2]
        first = httpx.get(url + "segments", timeout=600)
        timings["cold_first_page_s"] = time.perf_counter() - started
        timings["cold_first_page_cpu_s"] = _cpu_seconds(process.pid)
        timings["first_page_s"] = first.elapsed.total_seconds()
        first.raise_for_status()
        yield timings, url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _pages(url: str, pid: int, segment_id: str) -> dict[str, float]:
    """Each page as a user's browser asks for it, with the server's CPU seconds beside it."""
    timings = {}
    fragment = {"HX-Request": "true"}
    with httpx.Client(base_url=url, timeout=600) as client:
        for name, path, params in (
            ("filter_values_s", "/segments/choices", {}),
            ("overview_s", "/overview", {}),
            ("sorted_by_duration_s", "/segments", {"sort": "duration", "desc": "1"}),
            ("sorted_by_speaker_s", "/segments", {"sort": "speaker_cluster", "desc": "1"}),
            ("filtered_s", "/segments", {"lang": "it", "text": "city was 3"}),
            ("typed_where_s", "/segments", {"where": "pass_wer > 0.9 AND duration < 2"}),
            ("typed_where_sorted_s", "/segments", {"where": "duration < 2", "sort": "pass_wer"}),
            ("typed_where_speaker_s", "/segments", {"where": "split = 'dev' AND duration < 2"}),
            ("page_1000_s", "/segments", {"page": "1000"}),
            ("segment_s", "/segment", {"id": segment_id}),
            ("drops_s", "/drops", {}),
        ):  # fmt: skip
            cpu = _cpu_seconds(pid)
            response = client.get(path, params=params, headers=fragment)
            response.raise_for_status()
            timings[name] = response.elapsed.total_seconds()
            timings[name.removesuffix("_s") + "_cpu_s"] = _cpu_seconds(pid) - cpu
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument(
        "--workdir", type=Path, help="Where the workdir is built (default: in bench's cache)."
    )
    parser.add_argument("--starts", type=int, default=5, help="Cold starts, of which the median.")
    parser.add_argument("--start-only", action="store_true", help="Time the starts, no pages.")
    args = parser.parse_args()
    workdir = build(args.workdir or CACHE / f"explore-{args.rows}", args.rows, args.shards)
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": str(root)}
    timings = {
        "help_s": statistics.median(_help_seconds(root, env) for _ in range(args.starts)),
        "imports_cpu_s": _imports_cpu_seconds(root, env),
        "open_s": _open_seconds(workdir),
    }
    starts = []
    for start in range(args.starts):
        with _explore(workdir, root, env) as (started, url, pid):
            starts.append(started)
            if start == args.starts - 1 and not args.start_only:
                segment_id = pq.read_table(
                    workdir / "shard" / "src-00000.parquet", columns=["segment_id"]
                )["segment_id"][0].as_py()
                pages = _pages(url, pid, segment_id)
    timings |= _median(starts)
    if not args.start_only:
        timings |= pages
    emit("explore_first_page", rows=args.rows, starts=args.starts, **timings)


if __name__ == "__main__":
    main()
