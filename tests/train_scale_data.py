"""Curated shards made up for the training-at-scale tests: several files of several row groups,
rows of every split, a licence the policy refuses, durations from 0.4 to 3 s, a translation
per row. Tones stand in for speech: these tests are about which rows go where, not learning."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from training.data import RowFilter, shard_paths, texts_for_tokenizer
from training.tokenizer import Tokenizer, train_tokenizer

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "golf", "hotel", "kilo", "lima", "mike")
SPLIT = {"train": 0.7, "dev": 0.2, "test": 0.1}


def _flac(seconds: float, pitch: float) -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * pitch * t), 16000, format="FLAC")
    return buffer.getvalue()


def write_shards(workdir: Path, shards: int = 4, groups: int = 3, rows: int = 8) -> Path:
    """`shards` files of `groups` row groups of `rows` rows under WORKDIR/dataset/data."""
    rng = random.Random(7)
    folder = workdir / "dataset" / "data"
    folder.mkdir(parents=True)
    for shard in range(shards):
        path = folder / f"synthetic-{shard:03d}.parquet"
        writer = None
        for group in range(groups):
            records = []
            for row in range(rows):
                lang = rng.choice(["en", "it"])
                text = " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))
                seconds = round(rng.uniform(0.4, 3.0), 2)
                recording = f"tones/{shard}-{group}-{row // 2}.wav"
                records.append(
                    {
                        "audio": {"bytes": _flac(seconds, rng.uniform(200, 800)), "path": None},
                        "segment_id": f"{recording}#{row % 2}",
                        "recording_id": recording,
                        "source": "tones",
                        "lang": lang,
                        "text": text,
                        "license": "CC-BY-NC-4.0" if row == 5 else "CC-BY-4.0",
                        "attribution": "synthetic tones",
                        "offset": 0.0,
                        "duration": seconds,
                        "obligations": ["attribution"],
                        "translations": [
                            {"lang": "it" if lang == "en" else "en", "text": text.upper()}
                        ],
                    }
                )
            table = pa.Table.from_pylist(records)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    return workdir


def shards_tokenizer(workdir: Path, path: Path) -> Tokenizer:
    """A small SentencePiece model of the training split's texts, as a run would build."""
    texts, langs = texts_for_tokenizer(shard_paths(workdir), RowFilter("train", SPLIT))
    return train_tokenizer(texts, langs, 64, path)
