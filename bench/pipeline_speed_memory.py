"""The whole CPU pipeline (`vaglio curate`, Whisper base int8) on the demo corpus and on one
about ten times larger (scale 24: ~10x the audio): real-time factor, per core, and the peak
resident memory of the run.

Each run is a fresh `vaglio curate` process on an empty workdir, model loading included; peak
memory is that process's maximum resident set size as the kernel reports it.

    python bench/pipeline_speed_memory.py [--scales 1 24] [--engine threads|prefect]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import CACHE, CORES, emit
from manifests.views import connect
from pipeline.demo_corpus import build_demo_corpus


def curate_once(catalog: Path, workdir: Path, engine: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `vaglio curate` run on an empty workdir."""
    shutil.rmtree(workdir, ignore_errors=True)
    vaglio = Path(sys.executable).with_name("vaglio")
    command = [str(vaglio), "curate", str(catalog), "--workdir", str(workdir), "--engine", engine]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 24])
    parser.add_argument("--engine", choices=["threads", "prefect"], default="threads")
    args = parser.parse_args()
    runs = []
    for scale in args.scales:
        catalog = build_demo_corpus(CACHE / f"demo-x{scale}", scale=scale)
        workdir = CACHE / f"curate-x{scale}-{args.engine}"
        seconds, peak_mib = curate_once(catalog, workdir, args.engine)
        with connect(workdir) as con:
            audio_s, kept_s = con.execute(
                "SELECT (SELECT coalesce(sum(duration), 0) FROM recordings), "
                "(SELECT coalesce(sum(duration), 0) FROM segments WHERE drop_reason IS NULL)"
            ).fetchone()
        emit(
            "pipeline_speed_memory",
            engine=args.engine,
            scale=scale,
            audio_s=audio_s,
            kept_s=kept_s,
            wall_s=seconds,
            rtfx=audio_s / seconds,
            rtfx_per_core=audio_s / seconds / CORES,
            peak_rss_mib=peak_mib,
        )
        runs.append((audio_s, peak_mib))
    if len(runs) > 1:
        (small_audio, small_peak), (large_audio, large_peak) = runs[0], runs[-1]
        emit(
            "pipeline_memory_growth",
            engine=args.engine,
            audio_ratio=large_audio / small_audio,
            peak_rss_ratio=large_peak / small_peak,
        )


if __name__ == "__main__":
    main()
