"""Curated shards → training batches, streamed straight from `WORKDIR/dataset/data/*.parquet`.

Nothing is copied or exported first: rows are read a record batch at a time, and a row
reaches a batch only if it was kept (no `drop_reason`), its licence is allowed by the policy
in force *now* (a policy tightened after curation wins), and its recording falls in the
wanted split (`pipeline.query.splits.split_of`, by the row's speaker group, else its recording).

A batch is built here, not by a sampler, because FAMA tosses one coin per batch: the whole
batch is ASR (target = transcript, tag = spoken language) or ST (target = a translation,
tag = its language). Batches are filled up to `batch_seconds` of audio. Training streams
repeat forever (the trainer stops at `max_steps`); each (rank, worker) reads its own
share of the rows, so nothing is read twice per pass.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import torch

from licenses.policy import judge_license
from pipeline.query.splits import split_of
from training.config import DataConfig
from training.tokenizer import Tokenizer

SAMPLE_RATE = 16000
META_COLUMNS = ("segment_id", "recording_id", "split_group", "lang", "text", "license", "duration")


class DataError(ValueError):
    """A workdir that holds nothing to train on; the message says what to run."""


def shard_paths(workdir: Path) -> list[Path]:
    folder = Path(workdir) / "dataset" / "data"
    paths = sorted(folder.glob("*.parquet"))
    if not paths:
        raise DataError(f"{folder}: no curated shards; run `vaglio curate` on this workdir first")
    return paths


@lru_cache(maxsize=4096)
def _licence_allowed(text: str, policy: str | None) -> bool:
    return judge_license(text, policy).allowed


@dataclass(frozen=True)
class RowFilter:
    """Which rows of the shards one split may use."""

    split: str
    ratios: dict
    policy: str | None = None
    max_duration: float = float("inf")

    def keeps(self, row: dict) -> bool:
        return (
            not row.get("drop_reason")
            and row["duration"] <= self.max_duration
            and _licence_allowed(str(row["license"] or ""), self.policy)
            and split_of(row["recording_id"], self.ratios, row.get("split_group")) == self.split
        )


def iter_rows(
    paths: list[Path], keep: RowFilter, *, audio: bool = True, share: tuple[int, int] = (0, 1)
) -> Iterator[dict]:
    """The rows `keep` admits, shard by shard; `share = (k, n)` yields every n-th from the k-th.
    Audio is decoded only for rows that are yielded."""
    index = -1
    for path in paths:
        shard = pq.ParquetFile(path)
        names = set(shard.schema_arrow.names)
        wanted = (*META_COLUMNS, "translations", "drop_reason", *(("audio",) if audio else ()))
        columns = [c for c in wanted if c in names]
        for batch in shard.iter_batches(batch_size=64, columns=columns):
            for row in batch.to_pylist():
                if not keep.keeps(row):
                    continue
                index += 1
                if index % share[1] != share[0]:
                    continue
                if audio:
                    row["audio"] = decode_audio(row["audio"]["bytes"], path)
                yield row


def decode_audio(data: bytes, path: Path) -> np.ndarray:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise DataError(f"{path}: audio at {rate} Hz; curated shards are {SAMPLE_RATE} Hz")
    return samples.mean(axis=1)


@dataclass
class Example:
    """One training pair: audio, the transcript (interCTC target) and the target text."""

    segment_id: str
    audio: np.ndarray
    source_lang: str
    transcript: str
    target_lang: str
    target: str
    task: str  # "asr" or "st"


def examples_of(row: dict, tasks: tuple[str, ...]) -> list[Example]:
    """The ASR pair of a row and/or one ST pair per translation it carries."""
    out = []
    if "asr" in tasks:
        out.append(
            Example(
                row["segment_id"],
                row["audio"],
                row["lang"],
                row["text"],
                row["lang"],
                row["text"],
                "asr",
            )
        )
    if "st" in tasks:
        for translation in row.get("translations") or []:
            if translation.get("text"):
                out.append(
                    Example(
                        row["segment_id"],
                        row["audio"],
                        row["lang"],
                        row["text"],
                        translation["lang"],
                        translation["text"],
                        "st",
                    )
                )
    return out


@dataclass
class Batch:
    """Padded tensors for the model, plus the texts for scoring.

    `decoder_in` = [bos, tag, target…]; `decoder_out` = [pad, target…, eos]: the decoder is
    never asked to predict the tag (it is forced at decoding), so the tag is out of the loss.
    """

    audio: torch.Tensor
    audio_len: torch.Tensor
    transcript: torch.Tensor
    transcript_len: torch.Tensor
    target: torch.Tensor
    target_len: torch.Tensor
    tag: torch.Tensor
    decoder_in: torch.Tensor
    decoder_out: torch.Tensor
    examples: list[Example] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        tensors = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return Batch(**tensors, examples=self.examples)

    @property
    def seconds(self) -> float:
        return float(self.audio_len.sum()) / SAMPLE_RATE


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, *(len(r) for r in rows))
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, torch.tensor([len(r) for r in rows], dtype=torch.long)


def collate(examples: list[Example], tokenizer: Tokenizer) -> Batch:
    lengths = [len(e.audio) for e in examples]
    audio = torch.zeros(len(examples), max(lengths))
    for i, e in enumerate(examples):
        audio[i, : lengths[i]] = torch.from_numpy(e.audio)
    transcripts = [tokenizer.encode(e.transcript) for e in examples]
    targets = [tokenizer.encode(e.target) for e in examples]
    tags = [tokenizer.lang_id(e.target_lang) for e in examples]
    transcript, transcript_len = _pad(transcripts, tokenizer.pad_id)
    target, target_len = _pad(targets, tokenizer.pad_id)
    decoder_in, _ = _pad(
        [[tokenizer.bos_id, tag, *t] for tag, t in zip(tags, targets)], tokenizer.pad_id
    )
    decoder_out, _ = _pad(
        [[tokenizer.pad_id, *t, tokenizer.eos_id] for t in targets], tokenizer.pad_id
    )
    return Batch(
        audio,
        torch.tensor(lengths),
        transcript,
        transcript_len,
        target,
        target_len,
        torch.tensor(tags),
        decoder_in,
        decoder_out,
        examples,
    )


def _share() -> tuple[int, int]:
    """(index, count) of this (rank, dataloader worker) among all readers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info else (0, 1)
    return rank * workers + worker, world * workers


def fits(example: Example, tokenizer: Tokenizer, max_tokens: int | None) -> bool:
    """Whether both texts fit the decoder's positions (a longer target cannot be trained on:
    such rows are skipped rather than cut, which would teach the model to stop early)."""
    if max_tokens is None:
        return True
    return (
        max(len(tokenizer.encode(example.target)), len(tokenizer.encode(example.transcript)))
        <= max_tokens
    )


class TrainStream(torch.utils.data.IterableDataset):
    """Endless shuffled batches of one split; with `p_asr < 1`, one coin per batch picks
    ASR or ST (ST only from rows that carry translations)."""

    def __init__(
        self,
        paths: list[Path],
        keep: RowFilter,
        tokenizer: Tokenizer,
        config: DataConfig,
        p_asr: float = 1.0,
        seed: int = 1,
        max_tokens: int | None = None,
    ):
        self.paths, self.keep, self.tokenizer = paths, keep, tokenizer
        self.config, self.p_asr, self.seed = config, p_asr, seed
        self.max_tokens = max_tokens

    def __iter__(self) -> Iterator[Batch]:
        share = _share()
        rng = random.Random(f"{self.seed}:{share[0]}")
        tasks = ("asr",) if self.p_asr >= 1.0 else ("asr", "st")
        pools: dict[str, list[Example]] = {"asr": [], "st": []}
        limit = self.config.shuffle_buffer
        while True:
            rows = iter_rows(self.paths, self.keep, share=share)
            seen = fitting = 0
            for row in rows:
                seen += 1
                for example in examples_of(row, tasks):
                    if fits(example, self.tokenizer, self.max_tokens):
                        fitting += 1
                        pools[example.task].append(example)
                while sum(len(p) for p in pools.values()) >= limit:
                    yield self._draw(pools, rng)
            if not seen:
                raise DataError(f"no '{self.keep.split}' rows to train on (split, licences?)")
            if not fitting:  # else the stream would read its rows again forever
                raise DataError(
                    f"none of the {seen} '{self.keep.split}' rows fits the decoder's "
                    f"{self.max_tokens} tokens: raise decoding.max_tokens"
                )
            while any(pools.values()):
                yield self._draw(pools, rng)

    def _draw(self, pools: dict[str, list[Example]], rng: random.Random) -> Batch:
        task = "asr" if rng.random() < self.p_asr else "st"
        if not pools[task]:
            task = "st" if task == "asr" else "asr"
        pool = pools[task]
        rng.shuffle(pool)
        chosen: list[Example] = []
        seconds = 0.0
        while pool and len(chosen) < self.config.max_batch_size:
            duration = len(pool[-1].audio) / SAMPLE_RATE
            if chosen and seconds + duration > self.config.batch_seconds:
                break
            chosen.append(pool.pop())
            seconds += duration
        return collate(chosen, self.tokenizer)


def eval_batches(
    paths: list[Path],
    keep: RowFilter,
    tokenizer: Tokenizer,
    tasks: tuple[str, ...],
    batch_size: int,
    max_tokens: int | None = None,
) -> Iterator[Batch]:
    """Every example of one split once, in shard order (for validation and `eval`); with
    `max_tokens` (validation computes losses), only those that `fits`."""
    pending: list[Example] = []
    for row in iter_rows(paths, keep):
        pending.extend(e for e in examples_of(row, tasks) if fits(e, tokenizer, max_tokens))
        while len(pending) >= batch_size:
            yield collate(pending[:batch_size], tokenizer)
            pending = pending[batch_size:]
    if pending:
        yield collate(pending, tokenizer)


class EvalSet(torch.utils.data.IterableDataset):
    """`eval_batches` as a dataset Lightning can validate on, read afresh each time."""

    def __init__(
        self,
        paths: list[Path],
        keep: RowFilter,
        tokenizer: Tokenizer,
        tasks: tuple[str, ...],
        batch_size: int,
        max_tokens: int | None = None,
    ):
        self.args = (paths, keep, tokenizer, tasks, batch_size, max_tokens)

    def __iter__(self) -> Iterator[Batch]:
        return eval_batches(*self.args)


def texts_for_tokenizer(paths: list[Path], keep: RowFilter) -> tuple[list[str], set[str]]:
    """Transcripts and translations of the training split, and every language they use."""
    texts: list[str] = []
    langs: set[str] = set()
    for row in iter_rows(paths, keep, audio=False):
        texts.append(row["text"])
        langs.add(row["lang"])
        for translation in row.get("translations") or []:
            if translation.get("text"):
                texts.append(translation["text"])
                langs.add(translation["lang"])
    return texts, langs


def corpus_summary(paths: list[Path], ratios: dict, policy: str | None) -> dict:
    """What the model card reports: hours per language and split, sources, licences,
    attributions and obligations of the rows training may use, and the rows refused."""
    hours: Counter = Counter()
    split_hours: Counter = Counter()
    licences: Counter = Counter()
    sources: dict[str, set[str]] = {}
    attributions: set[str] = set()
    obligations: set[str] = set()
    directions: Counter = Counter()
    refused = 0
    for path in paths:
        shard = pq.ParquetFile(path)
        names = shard.schema_arrow.names
        columns = [
            c
            for c in (
                *META_COLUMNS,
                "source",
                "attribution",
                "obligations",
                "translations",
                "drop_reason",
            )
            if c in names
        ]
        for row in pq.read_table(path, columns=columns).to_pylist():
            if row.get("drop_reason"):
                continue
            if not _licence_allowed(str(row["license"] or ""), policy):
                refused += 1
                continue
            split = split_of(row["recording_id"], ratios, row.get("split_group"))
            split_hours[split] += row["duration"] / 3600
            hours[row["lang"]] += row["duration"] / 3600
            licences[row["license"]] += row["duration"] / 3600
            sources.setdefault(row.get("source") or "?", set()).add(row["license"])
            if row.get("attribution"):
                attributions.add(row["attribution"])
            obligations.update(row.get("obligations") or [])
            for translation in row.get("translations") or []:
                directions[f"{row['lang']}-{translation['lang']}"] += 1
    return {
        "hours_per_language": dict(sorted(hours.items())),
        "hours_per_split": dict(sorted(split_hours.items())),
        "hours_per_licence": dict(sorted(licences.items())),
        "sources": {name: sorted(lic) for name, lic in sorted(sources.items())},
        "attributions": sorted(attributions),
        "obligations": sorted(obligations),
        "translation_pairs": dict(sorted(directions.items())),
        "rows_refused_by_policy": refused,
    }
