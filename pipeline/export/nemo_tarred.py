"""NeMo tarred datasets: `audio_N.tar` with sharded manifests, written by vaglio.

Per split folder, as NeMo's tarred readers expect:

    audio_0.tar … audio_{N-1}.tar          flat FLAC members, one per segment
    sharded_manifests/manifest_0.json …    the lines of each tar, with `shard_id`
    tarred_audio_manifest.json             all lines

Lines are those of the plain NeMo export; a translation line names its member as
`<member>-subK.flac`, which NeMo's reader maps back to the one audio copy. Shards hold equal
numbers of segments (give or take one). NeMo's own converter is not used: it fails on crops.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.export.nemo import manifest_lines
from pipeline.export.readback import Entry, mono
from pipeline.export.rows import ExportError, Sample, member_name

MANIFEST_DIR = "sharded_manifests"
ALL_LINES = "tarred_audio_manifest.json"


def _write_shard(folder: Path, shard_id: int, samples: list[Sample], seen: set[str]) -> list[dict]:
    lines = []
    with tarfile.open(folder / f"audio_{shard_id}.tar", "w") as tar:
        for sample in samples:
            member = f"{member_name(sample.segment_id)}.flac"
            if member in seen:
                raise ExportError(f"{folder}: two segments share the member name {member} "
                                  f"(one is {sample.segment_id})")  # fmt: skip
            seen.add(member)
            info = tarfile.TarInfo(member)
            info.size = len(sample.flac)
            tar.addfile(info, io.BytesIO(sample.flac))
            for k, line in enumerate(manifest_lines(sample, member)):
                name = member if k == 0 else member.replace(".flac", f"-sub{k}.flac")
                lines.append(line | {"audio_filepath": name, "shard_id": shard_id})
    with (folder / MANIFEST_DIR / f"manifest_{shard_id}.json").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return lines


def export_nemo_tarred(
    samples: Iterable[Sample],
    out: Path,
    shard_size: int = 1000,
    progress: Callable[[Sample], None] = lambda s: None,
) -> dict[str, int]:
    """Write each split's shards under `out/<split>/`; returns segments per split.

    Segments are grouped by split in memory as metadata plus FLAC bytes; each split's shards
    are written once its size is known, so they hold equal numbers of segments.
    """
    by_split: dict[str, list[Sample]] = {}
    for sample in samples:
        by_split.setdefault(sample.split, []).append(sample)
    for split, rows in by_split.items():
        folder = Path(out) / split
        (folder / MANIFEST_DIR).mkdir(parents=True, exist_ok=True)
        shards = math.ceil(len(rows) / shard_size)
        per_shard = math.ceil(len(rows) / shards)
        everything: list[dict] = []
        seen: set[str] = set()
        for shard_id in range(shards):
            part = rows[shard_id * per_shard : (shard_id + 1) * per_shard]
            everything += _write_shard(folder, shard_id, part, seen)
            for sample in part:
                progress(sample)
        with (folder / ALL_LINES).open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in everything)
    return {split: len(rows) for split, rows in by_split.items()}


def nemo_paths(folder: Path) -> tuple[str, str]:
    """`manifest_filepath` and `tarred_audio_filepaths` for a NeMo config over `folder`."""
    shards = len(list(Path(folder).glob("audio_*.tar")))
    last = shards - 1
    return (f"{folder}/{MANIFEST_DIR}/manifest__OP_0..{last}_CL_.json",
            f"{folder}/audio__OP_0..{last}_CL_.tar")  # fmt: skip


def check_nemo_tarred(folder: Path) -> list[Entry]:
    """Every line of one split, read by NeMo's `LazyNeMoTarredIterator`, audio decoded.

    NeMo raises on a tar member without a line, but skips a line without a member: that is
    checked here, so a missing member is an error too.
    """
    from nemo.collections.common.data.lhotse.nemo_adapters import LazyNeMoTarredIterator

    folder = Path(folder)
    if not list(folder.glob("audio_*.tar")):
        raise ExportError(f"{folder}: no NeMo tarred shards (audio_N.tar)")
    manifests, tars = nemo_paths(folder)
    expected: dict[tuple[int, str, str], dict] = {}
    for path in sorted((folder / MANIFEST_DIR).glob("manifest_*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            expected[entry["shard_id"], entry["segment_id"], entry["lang"]] = entry
    entries, seen = [], set()
    try:
        for cut in LazyNeMoTarredIterator(manifests, tars, shard_seed=0):
            custom = cut.custom
            (supervision,) = cut.supervisions
            seen.add((custom["shard_id"], custom["segment_id"], supervision.language))
            entries.append(Entry(custom["segment_id"], custom["taskname"], supervision.text,
                                 supervision.language, custom["source_lang"],
                                 mono(cut.load_audio())))  # fmt: skip
    except (RuntimeError, AssertionError) as error:  # NeMo's mismatch errors
        raise ExportError(f"{folder}: {error}") from None
    missing = sorted(set(expected) - seen)
    if missing:
        shard_id, segment_id, _ = missing[0]
        name = expected[missing[0]]["audio_filepath"]
        raise ExportError(
            f"{folder / f'audio_{shard_id}.tar'}: no member for manifest line "
            f"{name!r} of {segment_id} ({len(missing)} lines without audio)"
        )
    return entries
