"""Every benchmark in one run, each printing JSON lines (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = (
    "segment_vs_silero",
    "asr_vs_plain",
    "pipeline_vs_anchor",
    "real_speech_wer",
    "word_timings",
    "pipeline_profile",
    "quality_signals",
    "pipeline_speed_memory",
    "text_lid",
    "written_forms",
    "sql_vs_pandas",
    "explore_first_page",
    "marker_proof",
    "export_speed",
    "llm_cpu",
    "text_quality",
    "speaker_counts",
)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    for name in BENCHMARKS:
        subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=root, check=True)


if __name__ == "__main__":
    main()
