"""FAMA-small stage 1 on one GPU, bf16 autocast: training throughput (audio hours per GPU
hour) and peak memory at the largest batch that fits. A few minutes; needs no corpus.

The model is the real one (`training.model.FamaModel`, preset `small`: 12/6 layers, d_model
1024, a 16k-piece vocabulary), trained with its real losses and AdamW on synthetic batches of
15 s utterances (noise, about 60 target tokens each; throughput does not depend on what is said).
The batch doubles until the GPU runs out of memory; each size is warmed up, then timed.

    python bench/gpu_fama_small.py                 # on a GPU
    python bench/gpu_fama_small.py --preset tiny --device cpu --max-utterances 4   # a dry run
"""

from __future__ import annotations

import argparse
import random
import string
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import emit


def synthetic_tokenizer(folder: Path, vocab_size: int):
    """A SentencePiece model of about `vocab_size` pieces, learned from random words."""
    from training.tokenizer import train_tokenizer

    rng = random.Random(0)
    words = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(60_000)
    ]
    texts = [" ".join(rng.choices(words, k=20)) for _ in range(30_000)]
    return train_tokenizer(texts, {"en", "it"}, vocab_size, folder / "tokenizer.model")


def batch_of(count: int, seconds: float, tokens: int, tokenizer, device: str):
    from training.data import Example, collate

    rng = np.random.default_rng(0)
    text = tokenizer.model.decode(list(range(10, 10 + tokens)))  # about `tokens` pieces
    examples = [
        Example(
            "",
            rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1,
            "en",
            text,
            "en",
            text,
            "asr",
        )
        for _ in range(count)
    ]
    return collate(examples, tokenizer).to(device)


def step_seconds(model, optimizer, batch, steps: int, device: str) -> float:
    """Mean wall seconds per update (forward, backward, clip, step) over `steps` updates."""
    timings = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model.losses(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    return sum(timings) / len(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each utterance")
    parser.add_argument("--max-utterances", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    from training.config import build_config
    from training.model import FamaModel, parameter_count
    from training.trainer import model_config

    config = build_config({"preset": args.preset})
    folder = Path(tempfile.mkdtemp(prefix="fama-bench-"))
    tokenizer = synthetic_tokenizer(folder, config.tokenizer.vocab_size)
    model = FamaModel(model_config(config, tokenizer.path)).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=1e-3)
    best = None
    count = 8
    while count <= args.max_utterances:
        try:
            if args.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            tokens = min(60, config.decoding.max_tokens // 2)
            batch = batch_of(count, args.seconds, tokens, tokenizer, args.device)
            step_seconds(model, optimizer, batch, 2, args.device)  # warm-up (and allocator)
            seconds = step_seconds(model, optimizer, batch, args.steps, args.device)
        except torch.OutOfMemoryError:
            break
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
        best = {
            "utterances_per_batch": count,
            "batch_audio_s": count * args.seconds,
            "step_s": seconds,
            "audio_h_per_gpu_h": count * args.seconds / seconds,
            "peak_gib": peak,
        }
        print(best, flush=True)
        count *= 2
        optimizer.zero_grad(set_to_none=True)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    emit(
        f"gpu_fama_{args.preset}_stage1_bf16",
        device=device_name,
        parameters=parameter_count(model),
        utterance_s=args.seconds,
        **(best or {}),
    )


if __name__ == "__main__":
    main()
