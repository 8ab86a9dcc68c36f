"""Write kept segments with their audio as Hugging Face-loadable Parquet, plus the manifest.

Dataset files go to `<workdir>/dataset/data/<shard>-<part>.parquet` (at most
`max_file_bytes` each), audio as FLAC in the `Audio` struct `{bytes, path}`; the schema
carries the `huggingface` metadata, so `load_dataset("parquet", …)` gives an `Audio` column.
The stage's own output is the manifest: every segment, kept and dropped, without audio, with
`shard` naming the dataset file that holds a kept one.

The manifests of the current shards are also the truth about the dataset folder: a file no
manifest names (its shard rewritten in fewer parts, its recordings deleted from the source, its
source removed from the catalog) is removed when a curation ends (`remove_unnamed_dataset_files`),
so `vaglio train` and `load_dataset("parquet", …)` see exactly the rows SQL calls kept.

Each kept row carries its recording's `split_group` (`pipeline.speakers.corpus`), which decides
its split wherever the dataset goes (`pipeline.query.splits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests.schemas import DATASET_AUDIO, MANIFEST, with_versions
from manifests.views import dataset_files
from pipeline.audio.cut import segment_samples
from pipeline.audio.decode import SAMPLE_RATE, to_flac
from pipeline.run.runner import atomic_write_table
from pipeline.speakers.corpus import read_split_groups
from pipeline.stage import ShardContext, Stage
from pipeline.validation import Count

DATASET_DIR = Path("dataset") / "data"
_TEXT_COLUMNS = (
    "segment_id",
    "recording_id",
    "source",
    "lang",
    "text",
    "text_asr",
    "license",
    "attribution",
    "split_group",
)
_FLOAT_COLUMNS = ("offset", "duration")


def dataset_schema() -> pa.Schema:
    """The dataset's Arrow schema, with the `huggingface` metadata that `datasets` reads."""
    import datasets

    string, seconds = datasets.Value("string"), datasets.Value("float64")
    features = datasets.Features(
        {
            "audio": datasets.Audio(sampling_rate=SAMPLE_RATE),
            **dict.fromkeys(_TEXT_COLUMNS, string),
            **dict.fromkeys(_FLOAT_COLUMNS, datasets.Value("float64")),
            "obligations": datasets.List(string),
            "translations": datasets.List({"lang": string, "text": string}),  # kept ones only
            # pass 2's words, in seconds from the start of the row's own audio
            "words": datasets.List({"start": seconds, "end": seconds, "text": string}),
        }
    )
    return features.arrow_schema


@dataclass(frozen=True)
class ShardConfig:
    max_file_bytes: Count = 256 * 1024 * 1024


class Shard(Stage):
    name = "shard"
    version = "4"  # 3: rows carry their split group; 4: word timings in the dataset files
    inputs = ("translate", "standardise")

    def fingerprint_extra(self, context: ShardContext) -> str:
        """The speaker groups of this shard's recordings (found across shards) go into its rows."""
        return ",".join(f"{r}={g}" for r, g in sorted(self._split_groups(context).items()))

    @staticmethod
    def _split_groups(context: ShardContext) -> dict[str, str]:
        recordings = context.read("standardise", ["recording_id"])["recording_id"].to_pylist()
        return read_split_groups(context.workdir, recordings)

    def run(self, context: ShardContext) -> pa.Table:
        segments = context.read("translate")
        kept = segments.filter(pc.is_null(segments["drop_reason"]))
        groups = self._split_groups(context)
        kept = kept.append_column(
            "split_group",
            pa.array([groups.get(r) for r in kept["recording_id"].to_pylist()], pa.string()),
        )
        audio = [to_flac(samples) for samples in segment_samples(context, kept)]
        shard_of: dict[str, str] = {}
        for number, rows in enumerate(self._split_by_size([len(a) for a in audio])):
            relative = DATASET_DIR / f"{context.shard_id}-{number:03d}.parquet"
            part = kept.take(pa.array(rows, pa.int64()))
            blobs = [audio[i] for i in rows]
            atomic_write_table(self._dataset_table(part, blobs), context.workdir / relative)
            shard_of |= dict.fromkeys(part["segment_id"].to_pylist(), relative.as_posix())
        shard_column = pa.array(
            [shard_of.get(s) for s in segments["segment_id"].to_pylist()], pa.string()
        )
        manifest = pa.table([*segments.columns, shard_column], schema=MANIFEST)
        return with_versions(manifest, self.name, self.version_tag)

    def files_beside(self, context: ShardContext, output: pa.Table) -> list[Path]:
        written = pc.unique(output["shard"].drop_null()).to_pylist()
        return [context.workdir / relative for relative in sorted(written)]

    def _split_by_size(self, sizes: list[int]) -> list[list[int]]:
        """Consecutive rows grouped so that no file's audio exceeds `max_file_bytes`."""
        parts: list[list[int]] = []
        total = 0
        for index, size in enumerate(sizes):
            if not parts or total + size > self.config.max_file_bytes:
                parts.append([])
                total = 0
            parts[-1].append(index)
            total += size
        return parts

    @staticmethod
    def _dataset_table(part: pa.Table, blobs: list[bytes]) -> pa.Table:
        schema = dataset_schema()
        paths = [
            s.replace("/", "__").replace("#", "-") + ".flac" for s in part["segment_id"].to_pylist()
        ]
        audio = pa.StructArray.from_arrays(
            [pa.array(blobs, pa.binary()), pa.array(paths, pa.string())], fields=list(DATASET_AUDIO)
        )
        kept = [
            [{"lang": t["lang"], "text": t["text"]} for t in entries if t["reason"] is None]
            for entries in part["translations"].to_pylist()
        ]
        words = [
            [_shifted(w, offset) for w in row_words]
            for row_words, offset in zip(part["words"].to_pylist(), part["offset"].to_pylist())
        ]
        made = {
            "audio": audio,
            "translations": pa.array(kept, schema.field("translations").type),
            "words": pa.array(words, schema.field("words").type),
        }
        return pa.table([made[n] if n in made else part[n] for n in schema.names], schema=schema)


def remove_unnamed_dataset_files(workdir: Path) -> list[Path]:
    """Delete the dataset files that no current manifest names (see the module docstring);
    called under the workdir's lock once every shard is done. Returns what was removed."""
    named = set(dataset_files(workdir))
    removed = []
    for path in sorted((Path(workdir) / DATASET_DIR).glob("*.parquet")):
        if path.relative_to(workdir).as_posix() not in named:
            path.unlink()
            removed.append(path)
    return removed


def _shifted(word: dict, offset: float) -> dict:
    """A timed word (seconds from the recording's start) in seconds from `offset`."""
    return word | {"start": round(word["start"] - offset, 3), "end": round(word["end"] - offset, 3)}
