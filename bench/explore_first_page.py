"""`vaglio explore` on a large workdir: how long until the Segments page's first page is served.

A synthetic manifest of `--rows` segments in the workdir layout (`shard/*.parquet` and
`shards.json`, no audio), opened as `vaglio explore` opens it, then pages requested over HTTP
from the app in this process: the first page as a user lands on it, one sorted by duration,
one filtered by language and a text search, and the same with a typed WHERE. Each request
includes its count of matching rows.

    python -m bench.explore_first_page [--rows 10000000] [--shards 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import CACHE, emit
from manifests.schemas import MANIFEST
from manifests.views import SHARD_LIST

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
    recording = pc.binary_join_element_wise(
        "src/rec-", _padded(numbers // 20, 8), ".flac", ""
    )
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
    columns = [
        values[f.name].cast(f.type) if f.name in values else pa.nulls(n, f.type) for f in MANIFEST
    ]
    return pa.table(columns, schema=MANIFEST)


def build(workdir: Path, rows: int, shards: int) -> Path:
    """The synthetic workdir (reused when already built)."""
    if (workdir / SHARD_LIST).exists():
        return workdir
    rng = np.random.default_rng(7)
    (workdir / "shard").mkdir(parents=True, exist_ok=True)
    shard_ids = []
    for index, chunk in enumerate(np.array_split(np.arange(rows), shards)):
        shard_id = f"src-{index:05d}"
        table = _shard(int(chunk[0]), len(chunk), rng)
        pq.write_table(table, workdir / "shard" / f"{shard_id}.parquet")
        shard_ids.append(shard_id)
    (workdir / SHARD_LIST).write_text(json.dumps(shard_ids))
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=100)
    args = parser.parse_args()
    workdir = build(CACHE / f"explore-{args.rows}", args.rows, args.shards)

    from fastapi.testclient import TestClient

    from explorer.app import create_app

    started = time.perf_counter()
    app = create_app(workdir)
    with TestClient(app) as client:
        opened = time.perf_counter() - started
        timings = {}
        for name, params in (
            ("first_page_s", {}),
            ("sorted_by_duration_s", {"sort": "duration", "desc": "1"}),
            ("filtered_s", {"lang": "it", "text": "city was 3"}),
            ("typed_where_s", {"where": "pass_wer > 0.9 AND duration < 2"}),
            ("page_1000_s", {"page": "1000"}),
        ):
            started = time.perf_counter()
            response = client.get("/segments", params=params)
            timings[name] = time.perf_counter() - started
            response.raise_for_status()
    emit("explore_first_page", rows=args.rows, open_s=opened, **timings)


if __name__ == "__main__":
    main()
