"""Curated shards → training batches, streamed straight from `WORKDIR/dataset/data/*.parquet`.

Nothing is copied or exported first: rows are read a record batch at a time, and a row
reaches a batch only if it was kept (no `drop_reason`), its licence is allowed by the policy
in force *now* (a policy tightened after curation wins), and its recording falls in the
wanted split (`pipeline.query.splits.split_of`, by the row's speaker group, else its recording).

Who reads what: the shards' row groups are the units of reading. Each epoch deals them, in an
order shuffled from the seed, to the readers, one reader per (rank, data-loader worker), so
every row group is read by one reader per epoch and nothing is read to be thrown away; a
split with fewer row groups than readers is cut finer (every n-th kept row of a row group).
A reader reads a *window* of units (`shuffle_buffer` utterances), shuffles it, cuts it into
batches (of similar durations when `bucket`, which wastes less on padding) and serves them
in random order. A batch carries the reader's position (epoch, the window, the units still
to read, the batches served), which the trainer saves in each checkpoint: a resumed stream
rebuilds the window and continues at the next batch (`TrainStream(resume=...)`).

A batch is built here, not by a sampler, because FAMA tosses one coin per batch: the whole
batch is ASR (target = transcript, tag = spoken language) or ST (target = a translation,
tag = its language). Training streams repeat forever (the trainer stops at `max_steps`);
each reader counts its own epochs.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import torch

from licenses.policy import judge_license
from pipeline.query.splits import split_of
from training.config import DataConfig
from training.distributed import rank_and_world
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

    def admits(self, row: dict) -> bool:
        """Whether any split may use the row: kept, short enough, its licence allowed."""
        return (
            not row.get("drop_reason")
            and row["duration"] <= self.max_duration
            and _licence_allowed(str(row["license"] or ""), self.policy)
        )

    def keeps(self, row: dict) -> bool:
        return self.admits(row) and self.split_of(row) == self.split

    def split_of(self, row: dict) -> str:
        """The row's split: by its speaker group when the curation found one, else its
        recording."""
        return split_of(row["recording_id"], self.ratios, row.get("split_group"))


class Unit(NamedTuple):
    """What a reader reads in one go: row group `row_group` of the shard file `shard`, or (a
    split with fewer row groups than readers) every `parts`-th of its kept rows from `part`."""

    shard: str
    row_group: int
    part: int = 0
    parts: int = 1


def split_counts(paths: list[Path], keep: RowFilter) -> dict[str, list[tuple[str, int, int]]]:
    """Per split, its row groups as (shard, row group, rows kept): what a run's readers divide.
    Reads only the columns that decide a row's split."""
    counts: dict[str, list[tuple[str, int, int]]] = {split: [] for split in keep.ratios}
    for path in paths:
        shard = pq.ParquetFile(path)
        names = set(shard.schema_arrow.names)
        wanted = ("recording_id", "split_group", "duration", "license", "drop_reason")
        columns = [c for c in wanted if c in names]
        for group in range(shard.num_row_groups):
            rows = shard.read_row_group(group, columns=columns).to_pylist()
            kept = Counter(keep.split_of(r) for r in rows if keep.admits(r))
            for split, number in sorted(kept.items()):
                counts[split].append((path.name, group, number))
    return counts


def reader_units(counts: list[tuple[str, int, int]], readers: int) -> list[Unit]:
    """The split's row groups as units, the fullest cut into parts until every one of
    `readers` readers can have one (each part keeps at least one row)."""
    total = sum(kept for _, _, kept in counts)
    if total < readers:
        raise DataError(
            f"{total} rows to train on cannot feed {readers} readers (ranks × data.num_workers): "
            "use fewer devices or workers, or more data"
        )
    parts = [1] * len(counts)
    while sum(parts) < readers:
        fullest = max(range(len(counts)), key=lambda i: counts[i][2] / parts[i])
        parts[fullest] += 1
    return [Unit(s, g, p, n) for (s, g, _), n in zip(counts, parts) for p in range(n)]


def epoch_order(units: list[Unit], seed: int, epoch: int) -> list[Unit]:
    """Every unit once, in the order epoch `epoch` deals them (the same on every reader)."""
    order = sorted(units)
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def iter_rows(
    paths: list[Path], keep: RowFilter, *, audio: bool = True, units: list[Unit] | None = None
) -> Iterator[dict]:
    """The rows `keep` admits, unit by unit (all row groups of `paths` when `units` is None).
    Audio is decoded only for rows that are yielded."""
    by_name = {p.name: p for p in paths}
    if units is None:
        units = [Unit(p.name, g) for p in paths for g in range(pq.ParquetFile(p).num_row_groups)]
    opened: tuple[str, pq.ParquetFile] | None = None  # one file open at a time
    for unit in units:
        path = by_name.get(unit.shard)
        if path is None:
            raise DataError(f"shard {unit.shard} is gone from the workdir; use a new --out folder")
        if opened is None or opened[0] != unit.shard:
            opened = (unit.shard, pq.ParquetFile(path))
        shard = opened[1]
        names = set(shard.schema_arrow.names)
        wanted = (*META_COLUMNS, "translations", "drop_reason", *(("audio",) if audio else ()))
        columns = [c for c in wanted if c in names]
        index = -1
        for batch in shard.iter_batches(
            batch_size=64, row_groups=[unit.row_group], columns=columns
        ):
            for row in batch.to_pylist():
                if not keep.keeps(row):
                    continue
                index += 1
                if index % unit.parts != unit.part:
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
    stream: dict | None = None  # a training batch: its reader's position after it

    def to(self, device: torch.device | str) -> Batch:
        tensors = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return Batch(**tensors, examples=self.examples, stream=self.stream)

    @property
    def seconds(self) -> float:
        return float(self.audio_len.sum()) / SAMPLE_RATE

    @property
    def padding(self) -> float:
        """The share of the audio tensor that is padding (what bucketing saves)."""
        return 1.0 - float(self.audio_len.sum()) / max(self.audio.numel(), 1)


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


def fits(example: Example, tokenizer: Tokenizer, max_tokens: int | None) -> bool:
    """Whether both texts fit the decoder's positions (a longer target cannot be trained on:
    such rows are skipped rather than cut, which would teach the model to stop early)."""
    if max_tokens is None:
        return True
    return (
        max(len(tokenizer.encode(example.target)), len(tokenizer.encode(example.transcript)))
        <= max_tokens
    )


def _duration(example: Example) -> float:
    return len(example.audio) / SAMPLE_RATE


@dataclass
class _Position:
    """Where a reader stands: in `epoch`, serving `window` (units read together), with
    `todo` still to read in this epoch and `served` batches of the window already served."""

    epoch: int
    window: list[Unit]
    todo: list[Unit]
    served: int = 0

    def as_dict(self, reader: int, readers: int) -> dict:
        return {
            "reader": reader,
            "readers": readers,
            "epoch": self.epoch,
            "window": [tuple(u) for u in self.window],
            "todo": [tuple(u) for u in self.todo],
            "served": self.served,
        }

    @classmethod
    def of(cls, state: dict) -> _Position:
        units = [Unit(*u) for u in state["window"]], [Unit(*u) for u in state["todo"]]
        return cls(state["epoch"], *units, state["served"])


class TrainStream(torch.utils.data.IterableDataset):
    """Endless shuffled batches of one split, each reader (rank × worker) reading only its own
    units; with `p_asr < 1`, one coin per batch picks ASR or ST (ST only from rows that carry
    translations).

    `counts` is the split's row groups (`split_counts`, which a run prepares once); `resume`
    the positions a checkpoint saved (`{"readers", "consumed", "states": {reader: position}}`).
    With as many readers as then, every reader continues exactly where it stopped; with
    another number, the readers share out what the least advanced epoch had left to read.
    """

    def __init__(
        self,
        paths: list[Path],
        keep: RowFilter,
        tokenizer: Tokenizer,
        config: DataConfig,
        p_asr: float = 1.0,
        seed: int = 1,
        max_tokens: int | None = None,
        *,
        counts: list[tuple[str, int, int]] | None = None,
        resume: dict | None = None,
    ):
        self.paths, self.keep, self.tokenizer = paths, keep, tokenizer
        self.config, self.p_asr, self.seed = config, p_asr, seed
        self.max_tokens = max_tokens
        self.counts = counts if counts is not None else split_counts(paths, keep)[keep.split]
        self.resume = resume

    def _reader(self) -> tuple[int, int]:
        """(this reader's index, the number of readers). A resumed loader starts again at
        worker 0, so on the same layout worker w plays the part of worker w + consumed."""
        rank, world = rank_and_world()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if self.resume and self.resume["readers"] == world * workers:
            worker = (worker + self.resume["consumed"]) % workers
        return rank * workers + worker, world * workers

    def _resumed(self, reader: int, readers: int) -> _Position | None:
        """Where this reader goes on from, or None to start at the beginning."""
        if not self.resume:
            return None
        states = self.resume["states"]
        if self.resume["readers"] == readers:
            return _Position.of(states[reader]) if reader in states else None
        # Another layout: what the least advanced epoch still had to read, dealt anew (the
        # windows being served are read again whole; nothing is skipped).
        before = self.resume["readers"]
        old_units = reader_units(self.counts, before)
        positions = {
            r: _Position.of(states[r])
            if r in states
            else _Position(0, [], epoch_order(old_units, self.seed, 0)[r::before])
            for r in range(before)
        }
        epoch = min(p.epoch for p in positions.values())
        left = {u for p in positions.values() if p.epoch == epoch for u in (*p.window, *p.todo)}
        order = [u for u in epoch_order(old_units, self.seed, epoch) if u in left]
        return _Position(epoch, [], order[reader::readers])

    def __iter__(self) -> Iterator[Batch]:
        reader, readers = self._reader()
        units = reader_units(self.counts, readers)
        position = self._resumed(reader, readers)
        whole = position is None  # a whole epoch ahead: it must serve something
        if position is None:
            position = _Position(0, [], epoch_order(units, self.seed, 0)[reader::readers])
        tasks = ("asr",) if self.p_asr >= 1.0 else ("asr", "st")
        while True:
            served_in_epoch = 0
            while position.window or position.todo:
                examples = self._read_window(position, tasks)
                rng = random.Random(f"{self.seed}:{position.epoch}:{position.window[0]}")
                batches = self._batches(examples, rng)
                while position.served < len(batches):
                    chosen = batches[position.served]
                    position.served += 1
                    served_in_epoch += 1
                    batch = collate(chosen, self.tokenizer)
                    after = position  # a window served whole need not be read again
                    if position.served == len(batches):
                        after = _Position(position.epoch, [], position.todo)
                    batch.stream = after.as_dict(reader, readers)
                    yield batch
                position.window, position.served = [], 0
            if whole and not served_in_epoch:  # else it would read its rows again forever
                raise DataError(
                    f"none of this reader's '{self.keep.split}' rows fits the decoder's "
                    f"{self.max_tokens} tokens: raise decoding.max_tokens"
                )
            epoch = position.epoch + 1
            position = _Position(epoch, [], epoch_order(units, self.seed, epoch)[reader::readers])
            whole = True

    def _read_window(self, position: _Position, tasks: tuple[str, ...]) -> list[Example]:
        """The examples of the position's window; a new window takes units from `todo`
        until it holds `shuffle_buffer` examples."""
        if position.window:
            return self._examples(position.window, tasks)
        examples: list[Example] = []
        while position.todo and len(examples) < self.config.shuffle_buffer:
            unit = position.todo.pop(0)
            position.window.append(unit)
            examples += self._examples([unit], tasks)
        return examples

    def _examples(self, units: list[Unit], tasks: tuple[str, ...]) -> list[Example]:
        return [
            example
            for row in iter_rows(self.paths, self.keep, units=units)
            for example in examples_of(row, tasks)
            if fits(example, self.tokenizer, self.max_tokens)
        ]

    def _batches(self, examples: list[Example], rng: random.Random) -> list[list[Example]]:
        """A window's examples as batches of one task each, in random order; one coin per
        batch picks ASR or ST while both remain."""
        by_task = {
            task: self._cut([e for e in examples if e.task == task], rng) for task in ("asr", "st")
        }
        order: list[list[Example]] = []
        while by_task["asr"] or by_task["st"]:
            task = "asr" if rng.random() < self.p_asr else "st"
            if not by_task[task]:
                task = "st" if task == "asr" else "asr"
            order.append(by_task[task].pop())
        return order

    def _cut(self, pool: list[Example], rng: random.Random) -> list[list[Example]]:
        """Batches of at most `max_batch_size` examples and `batch_seconds` of padded audio
        (size × the longest), shuffled; with `bucket`, cut from the pool sorted by duration."""
        rng.shuffle(pool)
        if self.config.bucket:
            pool.sort(key=_duration)  # stable: equal durations stay shuffled
        batches: list[list[Example]] = []
        current: list[Example] = []
        longest = 0.0
        for example in pool:
            duration = _duration(example)
            padded = max(longest, duration) * (len(current) + 1)
            full = len(current) >= self.config.max_batch_size
            if current and (full or padded > self.config.batch_seconds):
                batches.append(current)
                current, longest = [], 0.0
            current.append(example)
            longest = max(longest, duration)
        if current:
            batches.append(current)
        rng.shuffle(batches)
        return batches


def eval_batches(
    paths: list[Path],
    keep: RowFilter,
    tokenizer: Tokenizer,
    tasks: tuple[str, ...],
    batch_size: int,
    max_tokens: int | None = None,
    units: list[Unit] | None = None,
) -> Iterator[Batch]:
    """Every example of one split once (of `units` only, when given), in shard order (for
    validation and `eval`); with `max_tokens` (validation computes losses), only those that
    `fits`."""
    pending: list[Example] = []
    for row in iter_rows(paths, keep, units=units):
        pending.extend(e for e in examples_of(row, tasks) if fits(e, tokenizer, max_tokens))
        while len(pending) >= batch_size:
            yield collate(pending[:batch_size], tokenizer)
            pending = pending[batch_size:]
    if pending:
        yield collate(pending, tokenizer)


class EvalSet(torch.utils.data.IterableDataset):
    """`eval_batches` as a dataset Lightning can validate on, read afresh each time; each rank
    reads its own share of the split's units (`counts`), so validation is sharded too."""

    def __init__(
        self,
        paths: list[Path],
        keep: RowFilter,
        tokenizer: Tokenizer,
        tasks: tuple[str, ...],
        batch_size: int,
        max_tokens: int | None = None,
        counts: list[tuple[str, int, int]] | None = None,
    ):
        self.args = (paths, keep, tokenizer, tasks, batch_size, max_tokens)
        self.counts = counts if counts is not None else split_counts(paths, keep)[keep.split]

    def __iter__(self) -> Iterator[Batch]:
        rank, world = rank_and_world()
        rows = sum(kept for _, _, kept in self.counts)
        units = reader_units(self.counts, min(world, rows)) if rows else []
        return eval_batches(*self.args, units=units[rank::world])


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
