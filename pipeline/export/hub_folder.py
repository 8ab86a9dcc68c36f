"""The folder the hub gets: kept rows as Parquet, one config per language and per direction.

Layout (what `datasets` and the hub's viewer read without a loading script):

    README.md                       the card (see `card.py`), `configs` pointing at the files
    LICENSES.md                     every licence with its link and the sources under it
    data/<config>/<split>-NNNNN-of-MMMMM.parquet
    .vaglio-publish.json            the list of the files above: what vaglio wrote here

The list is the folder's only truth about what the dataset consists of: a build replaces only
the files an earlier build listed, and the upload sends only listed files. Anything else in the
folder (a `.env`, the user's own notes) is neither touched nor published, and a non-empty folder
without the list is refused rather than overwritten.

A config is a language (`en`: audio and transcript) or a translation direction (`en-de`: audio,
transcript and translation). Rows whose licence asks for share-alike go to their own configs
(`en-sharealike`), so permissive configs can be reused without inheriting that condition.

Files are sized in bytes: at most `max_file_bytes` each, and split further (down to
`min_file_bytes`) until a config has `min_files`, so streaming dataloader workers all get data;
row groups hold at most `row_group_bytes` so the viewer can read them. The audio column is stored
uncompressed (FLAC is compressed already) and the `huggingface` schema metadata declares the
`Audio` feature, so `load_dataset(folder, config)` needs no cast.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.export.rows import ExportError, KeptRows
from pipeline.run.runner import atomic_write_text

DATA_DIR = "data"
FILE_LIST = ".vaglio-publish.json"
SHARE_ALIKE_SUFFIX = "-sharealike"
_COMMON = ("duration", "recording_id", "source", "license", "attribution")


@dataclass(frozen=True)
class Sizing:
    max_file_bytes: int = 500 * 10**6
    min_file_bytes: int = 50 * 10**6
    min_files: int = 20
    row_group_bytes: int = 100 * 10**6

    def files_for(self, total_bytes: int, rows: int) -> int:
        needed = math.ceil(total_bytes / self.max_file_bytes)
        for_workers = min(self.min_files, total_bytes // max(self.min_file_bytes, 1))
        return max(1, min(rows, max(needed, for_workers)))


@dataclass
class ConfigSummary:
    """One published config: what it holds, split by split."""

    name: str
    kind: str  # "transcription" or "translation"
    source_lang: str
    target_lang: str | None
    share_alike: bool
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)  # split -> paths in the folder
    licenses: set[str] = field(default_factory=set)


def _features(kind: str):
    import datasets

    string = datasets.Value("string")
    columns = {"id": string, "audio": datasets.Audio(sampling_rate=SAMPLE_RATE), "text": string}
    if kind == "translation":
        columns |= {"translation": string, "source_lang": string, "target_lang": string}
    else:
        columns |= {"lang": string}
    columns |= {name: string for name in _COMMON} | {"duration": datasets.Value("float64")}
    columns["obligations"] = datasets.List(string)
    return datasets.Features(columns)


def config_name(source_lang: str, target_lang: str | None, share_alike: bool) -> str:
    base = source_lang if target_lang is None else f"{source_lang}-{target_lang}"
    return base + (SHARE_ALIKE_SUFFIX if share_alike else "")


def _config_rows(table: pa.Table, kept: KeptRows) -> Iterator[tuple[ConfigSummary, pa.Table]]:
    """Split one dataset file's rows by config, shaped like that config's features."""
    share_alike = pa.array([kept.share_alike(x) for x in table["license"].to_pylist()])
    for sa in (False, True):
        part = table.filter(pc.equal(share_alike, sa))
        for lang in sorted(set(part["lang"].to_pylist())):
            rows = part.filter(pc.equal(part["lang"], lang))
            summary = ConfigSummary(config_name(lang, None, sa), "transcription", lang, None, sa)
            yield (
                summary,
                rows.rename_columns(["id" if n == "segment_id" else n for n in rows.column_names]),
            )
            yield from _translation_rows(rows, lang, sa)


def _translation_rows(rows: pa.Table, lang: str, sa: bool):
    by_target: dict[str, tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
    for index, entries in enumerate(rows["translations"].to_pylist()):
        for entry in entries or ():
            by_target[entry["lang"]][0].append(index)
            by_target[entry["lang"]][1].append(entry["text"])
    for target, (indices, texts) in sorted(by_target.items()):
        part = rows.take(pa.array(indices, pa.int64()))
        n = len(part)
        part = part.rename_columns(["id" if c == "segment_id" else c for c in part.column_names])
        part = part.append_column("translation", pa.array(texts, pa.string()))
        part = part.append_column("source_lang", pa.array([lang] * n, pa.string()))
        part = part.append_column("target_lang", pa.array([target] * n, pa.string()))
        summary = ConfigSummary(config_name(lang, target, sa), "translation", lang, target, sa)
        yield summary, part


class _SplitWriter:
    """Writes one config's split into numbered files of about `target` bytes each."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, target: int, sizing: Sizing):
        self.folder, self.split, self.schema = folder, split, schema
        self.target, self.sizing = target, sizing
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._file_bytes = 0
        self._buffer: list[pa.Table] = []
        self._buffer_bytes = 0

    def add(self, table: pa.Table) -> None:
        sizes = pc.binary_length(pc.struct_field(table["audio"], "bytes")).to_pylist()
        start = 0
        for end, size in enumerate(sizes, start=1):
            self._buffer_bytes += size
            self._file_bytes += size
            if self._buffer_bytes >= self.sizing.row_group_bytes or self._file_bytes >= self.target:
                self._buffer.append(table.slice(start, end - start))
                start = end
                self._flush(roll=self._file_bytes >= self.target)
        if start < len(table):
            self._buffer.append(table.slice(start))

    def _flush(self, roll: bool = False) -> None:
        if self._buffer:
            if self._writer is None:
                path = self.folder / f"{self.split}-{len(self.paths):05d}.parquet.partial"
                self.paths.append(path)
                self._writer = pq.ParquetWriter(
                    path,
                    self.schema,
                    compression={n: "none" if n == "audio" else "zstd" for n in self.schema.names},
                    use_dictionary=[n for n in self.schema.names if n != "audio"],
                    write_page_index=True,
                )
            rows = pa.concat_tables(self._buffer).cast(self.schema)
            self._writer.write_table(rows, row_group_size=max(len(rows), 1))
            self._buffer, self._buffer_bytes = [], 0
        if roll and self._writer is not None:
            self._writer.close()
            self._writer, self._file_bytes = None, 0

    def close(self) -> list[Path]:
        """Finish, and name the files `<split>-NNNNN-of-MMMMM.parquet`."""
        self._flush(roll=True)
        final = []
        for number, path in enumerate(self.paths):
            name = f"{self.split}-{number:05d}-of-{len(self.paths):05d}.parquet"
            path.rename(path.with_name(name))
            final.append(path.with_name(name))
        return final


def build_hub_folder(
    kept: KeptRows,
    out: Path,
    sizing: Sizing,
    progress: Callable[[int], None] = lambda rows: None,
) -> list[ConfigSummary]:
    """Write every config's Parquet files under `out/data/`; the card is written separately.

    Two passes over the dataset files: the first sizes every config and split (so files can be
    planned in bytes), the second writes one config at a time, holding at most one row group
    per split in memory.
    """
    out = Path(out)
    plan: dict[str, ConfigSummary] = {}
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for table in kept.tables():
        for summary, rows in _config_rows(table, kept):
            config = plan.setdefault(summary.name, summary)
            sizes = pc.binary_length(pc.struct_field(rows["audio"], "bytes"))
            for split in set(rows["split"].to_pylist()):
                mask = pc.equal(rows["split"], split)
                part = rows.filter(mask)
                totals[config.name, split][0] += pc.sum(sizes.filter(mask)).as_py() or 0
                totals[config.name, split][1] += len(part)
                config.rows[split] = config.rows.get(split, 0) + len(part)
                config.seconds[split] = config.seconds.get(split, 0.0) + (
                    pc.sum(part["duration"]).as_py() or 0.0
                )
                config.licenses |= set(part["license"].to_pylist())
    if not plan:
        raise ExportError(f"{kept.workdir}: no kept rows to publish")
    for name in sorted(plan):
        config = plan[name]
        folder = out / DATA_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        schema = _features(config.kind).arrow_schema
        writers = {}
        for split in config.rows:
            total, rows = totals[name, split]
            target = max(1, math.ceil(total / sizing.files_for(total, rows)))
            writers[split] = _SplitWriter(folder, split, schema, target, sizing)
        for table in kept.tables():
            for summary, rows in _config_rows(table, kept):
                if summary.name != name:
                    continue
                for split, writer in writers.items():
                    part = rows.filter(pc.equal(rows["split"], split))
                    if len(part):
                        writer.add(part.select(schema.names))
                        progress(len(part))
        for split, writer in writers.items():
            config.files[split] = [p.relative_to(out).as_posix() for p in writer.close()]
    return [plan[name] for name in sorted(plan)]


def listed_files(folder: Path) -> list[str]:
    """The files a build wrote into `folder`, relative to it, as its file list records them."""
    record = Path(folder) / FILE_LIST
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        raise ExportError(f"{folder}: not built by `vaglio publish` (no {FILE_LIST})") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(f"{record}: unreadable file list ({error})") from None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ExportError(f"{record}: unreadable file list (expected a list of paths)")
    return files


def clear_earlier_build(folder: Path) -> None:
    """Make `folder` ready for a build: remove what an earlier build listed, nothing else.

    A folder that holds anything without a file list is the user's, and is refused.
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder; choose another --out")
    if not (folder / FILE_LIST).exists():
        if any(folder.iterdir()):
            raise ExportError(
                f"{folder}: not empty and not built by `vaglio publish`; choose another --out"
            )
        return
    root = folder.resolve()
    for name in listed_files(folder):
        path = folder / name
        if path.resolve().is_relative_to(root) and path.is_file() and not path.is_symlink():
            path.unlink()
    for directory in sorted((folder / DATA_DIR).glob("**/"), reverse=True):  # deepest first
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def write_file_list(folder: Path, files: list[str]) -> None:
    record = json.dumps({"files": sorted(files)}, indent=1) + "\n"
    atomic_write_text(record, Path(folder) / FILE_LIST)
