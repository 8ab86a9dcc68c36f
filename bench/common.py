"""What every benchmark shares: where corpora are cached, and how a figure is printed."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

CACHE = Path(os.environ.get("VAGLIO_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))
CORES = os.cpu_count() or 1


def command_line() -> str:
    """How to run the benchmark again, as it was run now."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(Path.cwd())
    return shlex.join(["python", str(script), *sys.argv[1:]])


def emit(benchmark: str, **figures) -> None:
    """One JSON line: the benchmark, its figures, the machine's cores and the command."""
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    line = {"benchmark": benchmark, **rounded, "cores": CORES, "command": command_line()}
    print(json.dumps(line), flush=True)
