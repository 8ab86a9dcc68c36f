"""Where `vaglio curate`'s time goes on the demo corpus: each stage's wall and CPU seconds, and
inside the two ASR passes, audio decoding (FLAC to samples, cut), Whisper's language ID and
transcription, and pass 2's word timings (inside its transcription) and written forms (NeMo
ITN, grammar loading included); inside the quality stage, the SNR estimate (the rest of it is
DNSMOS); and the share of the four per-segment signals together (quality, speakers, word
timings, written forms).

The run is in this process with the threads engine and the default config; the parts inside
the passes are timed by wrapping the functions the stages call (nothing else changes). Stages
run one after another, so process CPU time between two stage starts is that stage's.

    python bench/pipeline_profile.py [--scale 1] [--config pipeline.yaml]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from bench.common import CACHE, emit
from manifests.views import connect
from pipeline.asr import shared
from pipeline.asr.faster_whisper_backend import FasterWhisperBackend
from pipeline.config import load_config
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.stages import pass1, pass2, quality

spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # part -> [wall, cpu]


@contextmanager
def timed(part: str):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        spent[part][0] += time.perf_counter() - wall
        spent[part][1] += time.process_time() - cpu


def wrap(owner, name: str, part: str) -> None:
    """Time every call of `owner.name` as `part`."""
    original = getattr(owner, name)

    def timed_call(*args, **kwargs):
        with timed(part):
            return original(*args, **kwargs)

    setattr(owner, name, timed_call)


# The per-segment signals of issue 23, whose cost together is reported apart.
SIGNALS = ("quality", "speakers", "pass2.word_timings", "pass2.written_form")
PARTS = {"language_probabilities": "language_id", "detect": "language_id"}  # method -> part


class TimedBackend:
    """A loaded ASR backend whose calls are timed under the pass that makes them: language ID
    (`language_probabilities`, `detect`), encoding and decoding of kept encodings (pass 1's
    language windows), and `transcribe` (encoding and decoding together)."""

    def __init__(self, backend, stage: str):
        self.backend, self.stage = backend, stage

    def __getattr__(self, name: str):
        method = getattr(self.backend, name)
        if not callable(method):
            return method
        part = f"{self.stage}.{PARTS.get(name, name)}"

        def timed_call(*args, **kwargs):
            with timed(part):
                result = method(*args, **kwargs)
            return timed_iteration(result, part) if name == "encode" else result

        return timed_call


def timed_iteration(items, part: str):
    """The items of a generator, each one's production timed as `part`."""
    items = iter(items)
    while True:
        with timed(part):
            item = next(items, None)
        if item is None:
            return
        yield item


_timed_backends: dict[tuple[int, str], TimedBackend] = {}


def timed_backend(config, stage: str) -> TimedBackend:
    """One timed wrapper per loaded backend and pass, so pass 1 still sees that its language
    model is its transcribing model."""
    backend = shared.loaded_backend(config)
    return _timed_backends.setdefault((id(backend), stage), TimedBackend(backend, stage))


class StageClock:
    """The curate progress hook: wall and process CPU time from one stage start to the next."""

    def __init__(self):
        self.current: str | None = None
        self.started = (0.0, 0.0)

    def start(self, stage: str, total: int) -> None:
        self.stop()
        self.current, self.started = stage, (time.perf_counter(), time.process_time())

    def advance(self, outcome) -> None:
        pass

    def stop(self) -> None:
        if self.current:
            spent[self.current][0] += time.perf_counter() - self.started[0]
            spent[self.current][1] += time.process_time() - self.started[1]
        self.current = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="demo corpus size multiplier")
    parser.add_argument("--config", type=Path, help="a pipeline config YAML (default: none)")
    args = parser.parse_args()
    catalog = build_demo_corpus(CACHE / f"demo-x{args.scale}", scale=args.scale)
    workdir = CACHE / f"profile-x{args.scale}-{args.config.stem if args.config else 'default'}"
    shutil.rmtree(workdir, ignore_errors=True)
    for module, stage in ((pass1, "pass1"), (pass2, "pass2")):
        wrap(module, "segment_samples", f"{stage}.decode_audio")
        module.loaded_backend = lambda config, stage=stage: timed_backend(config, stage)
    wrap(quality, "snr_db", "quality.snr")
    wrap(FasterWhisperBackend, "_aligned_words", "pass2.word_timings")
    wrap(pass2, "written_form", "pass2.written_form")
    clock, config = StageClock(), load_config(args.config)
    with timed("total"):
        result = curate(catalog, workdir, config, ThreadExecutor(config.workers), clock)
        clock.stop()
    total_wall, total_cpu = spent.pop("total")
    with connect(result.workdir) as con:
        (audio_s,) = con.execute("SELECT coalesce(sum(duration), 0) FROM recordings").fetchone()
    emit(
        "pipeline_profile",
        scale=args.scale,
        config=str(args.config) if args.config else None,
        audio_s=audio_s,
        wall_s=total_wall,
        cpu_s=total_cpu,
        rtfx=audio_s / total_wall,
        wall_share={part: round(w / total_wall, 3) for part, (w, _) in sorted(spent.items())},
        cpu_share={part: round(c / total_cpu, 3) for part, (_, c) in sorted(spent.items())},
        signals_wall_share=round(sum(spent[p][0] for p in SIGNALS) / total_wall, 3),
        signals_cpu_share=round(sum(spent[p][1] for p in SIGNALS) / total_cpu, 3),
    )


if __name__ == "__main__":
    main()
