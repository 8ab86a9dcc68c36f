"""One loaded ASR model per process, shared by every stage that asks for the same settings.

Pass 1 and pass 2 usually run the same Whisper model; loading it once per worker keeps memory
flat and saves the load time of every shard after the first. Where the passes only decode
differently (beam sizes), the faster-whisper backend shares one copy of the weights.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from pipeline.asr import AsrBackend, Backend, load_backend
from pipeline.validation import Count, Seconds


@dataclass(frozen=True)
class AsrModelConfig:
    backend: Backend = "faster-whisper"  # or vllm, nemo
    model: str = "whisper-base"  # the offline copy; or a local path, or a hub id
    device: Annotated[str, Field(pattern=r"^(cpu|auto|cuda(:\d+)?)$")] = "cpu"
    compute_type: str = "int8"
    # Threads of one model, whatever engine runs it and however many cores the machine has:
    # a fixed count keeps a run's output the same on every engine (Ray gives a 1-CPU task
    # OMP_NUM_THREADS=1, the threads engine had every core) and under taskset. Raise it, with
    # `resources: {pass1: {num_cpus: N}}` for Ray, on a machine with cores to spare.
    cpu_threads: Count = 2
    batch_size: Count = 8
    beam_size: Count = 5
    window_margin_s: Seconds = 6.0  # faster-whisper: padding after the longest audio of a batch

    @property
    def tag(self) -> str:
        """What a row's `versions` map records about the model."""
        return f"{self.backend}:{self.model}"


_loaded: dict[AsrModelConfig, AsrBackend] = {}
_lock = threading.Lock()


def loaded_backend(config: AsrModelConfig) -> AsrBackend:
    """The backend for `config`, loaded on first use and kept for the life of the process."""
    with _lock:
        if config not in _loaded:
            options = dataclasses.asdict(config)
            _loaded[config] = load_backend(options.pop("backend"), **options)
        return _loaded[config]
