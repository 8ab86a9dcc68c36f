"""The training stream on a curated workdir: how much of each batch's audio tensor is padding,
with utterances batched as they come (`data.bucket: false`) and bucketed by duration within
each shuffle window (`true`), over a few epochs of the train split. No model is run.

    python -m bench.stream_padding --workdir WORKDIR [--preset tiny] [--epochs 3]
        [--batch-seconds S]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True, help="a curated workdir")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-seconds", type=float, help="instead of the preset's")
    args = parser.parse_args()

    from training.config import build_config
    from training.data import RowFilter, TrainStream, shard_paths, texts_for_tokenizer
    from training.tokenizer import train_tokenizer

    sizes = {"batch_seconds": args.batch_seconds} if args.batch_seconds else {}
    base = build_config({"preset": args.preset, "data": sizes})
    d = base.data
    keep = RowFilter("train", d.split, d.policy, d.max_duration)
    paths = shard_paths(args.workdir)
    with tempfile.TemporaryDirectory() as folder:
        texts, langs = texts_for_tokenizer(paths, keep)
        tokenizer = train_tokenizer(
            texts, langs, base.tokenizer.vocab_size, Path(folder) / "tokenizer.model"
        )
        for bucket in (False, True):
            config = build_config({"preset": args.preset, "data": {**sizes, "bucket": bucket}})
            stream = TrainStream(paths, keep, tokenizer, config.data, seed=base.trainer.seed)
            padded = audio = batches = utterances = 0
            for batch in stream:
                if batch.stream["epoch"] >= args.epochs:
                    break
                padded += batch.audio.numel()
                audio += int(batch.audio_len.sum())
                batches += 1
                utterances += len(batch.examples)
            emit(
                "stream_padding",
                preset=args.preset,
                bucket=bucket,
                epochs=args.epochs,
                utterances_per_epoch=utterances / args.epochs,
                batches=batches,
                utterances_per_batch=utterances / batches,
                padding_share=1 - audio / padded,
                batch_seconds=d.batch_seconds,
                shuffle_buffer=d.shuffle_buffer,
            )


if __name__ == "__main__":
    main()
