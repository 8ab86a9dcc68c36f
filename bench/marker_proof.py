"""What a completion marker's proof costs on resume: the size plus a checksum of the Parquet
footer (what the runner checks) against a checksum of the whole file, and against reading
the footer with pyarrow (`read_metadata`), on one shard of `--mib` MiB of audio-like bytes.

Each is timed over repeated reads of a file in the page cache, so the figures are the CPU
and system-call cost, the least a resume pays per shard; a cold disk adds reading every
byte to the whole-file checksum only.

    python bench/marker_proof.py [--mib 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import emit
from pipeline.offline_files import sha256_of
from pipeline.run.runner import file_proof


def _seconds(action, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the shard (the default "
                        "is the shard stage's largest dataset file)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(256 * 1024) for _ in range(args.mib * 4)]  # FLAC-like: incompressible
    table = pa.table({"audio": pa.array(blobs, pa.binary()), "n": np.arange(len(blobs))})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shard.parquet"
        pq.write_table(table, path, compression="zstd")
        sha256_of(path)  # into the page cache
        footer = _seconds(lambda: file_proof(path), args.repeats * 20)
        metadata = _seconds(lambda: pq.read_metadata(path), args.repeats * 20)
        whole = _seconds(lambda: sha256_of(path), args.repeats)
        emit(
            "marker_proof",
            file_mib=round(path.stat().st_size / 2**20, 1),
            footer_proof_ms=footer * 1e3,
            read_metadata_ms=metadata * 1e3,
            whole_file_sha256_ms=whole * 1e3,
            whole_over_footer=whole / footer,
        )


if __name__ == "__main__":
    main()
