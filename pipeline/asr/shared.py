"""One loaded ASR model per process, shared by every stage that asks for the same settings.

Pass 1 and pass 2 usually run the same Whisper model; loading it once per worker keeps memory
flat and saves the load time of every shard after the first. Where the passes only decode
differently (beam sizes), the faster-whisper backend shares one copy of the weights.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from pipeline.asr import AsrBackend, Backend, load_backend
from pipeline.validation import Count, CountOrZero, Seconds


@dataclass(frozen=True)
class AsrModelConfig:
    backend: Backend = "faster-whisper"  # or vllm, nemo
    model: str = "whisper-base"  # the offline copy; or a local path, or a hub id
    device: Annotated[str, Field(pattern=r"^(cpu|auto|cuda(:\d+)?)$")] = "cpu"
    compute_type: str = "int8"
    cpu_threads: CountOrZero = 0  # 0: every core
    batch_size: Count = 8
    beam_size: Count = 5
    window_margin_s: Seconds = 6.0  # faster-whisper: padding after the longest audio of a batch

    @property
    def tag(self) -> str:
        """What a row's `versions` map records about the model."""
        return f"{self.backend}:{self.model}"


_loaded: dict[AsrModelConfig, AsrBackend] = {}
_lock = threading.Lock()


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loaded_backend(config: AsrModelConfig) -> AsrBackend:
    """The backend for `config`, loaded on first use and kept for the life of the process.

    `cpu_threads: 0` becomes the number of available cores here (unless OMP_NUM_THREADS says
    otherwise): CTranslate2 reads 0 as its own default of 4 threads, which oversubscribes a
    2-core machine and leaves most of a 16-core one idle.
    """
    with _lock:
        if config not in _loaded:
            options = dataclasses.asdict(config)
            if not config.cpu_threads and "OMP_NUM_THREADS" not in os.environ:
                options["cpu_threads"] = available_cores()
            _loaded[config] = load_backend(options.pop("backend"), **options)
        return _loaded[config]
