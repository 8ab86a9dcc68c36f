"""NeMo manifests: `<split>.jsonl` beside an `audio/` folder of FLAC files.

Each line has what NeMo's ASR and Canary (AED) models read: `audio_filepath` (relative to the
manifest's folder), `duration`, `text`, `lang`, and the prompt fields `source_lang`,
`target_lang`, `pnc` and `taskname`. A kept translation is a line of its own (`taskname: ast`,
the translation as `text`, `lang` its language) over the same audio file. Provenance
(`segment_id`, `license`, `attribution`) rides along; NeMo keeps unknown keys on the cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.export.readback import Entry, inside, mono
from pipeline.export.rows import ExportError, Sample, member_name
from pipeline.text.pnc import is_punctuated

AUDIO_DIR = "audio"


def manifest_lines(sample: Sample, audio_filepath: str) -> list[dict]:
    """The ASR line and one AST line per kept translation, as NeMo and Canary read them."""
    common = {"audio_filepath": audio_filepath, "duration": sample.duration,
              "source_lang": sample.lang, "segment_id": sample.segment_id,
              "license": sample.license, "attribution": sample.attribution}  # fmt: skip
    lines = [common | {"text": sample.text, "lang": sample.lang, "target_lang": sample.lang,
                       "pnc": sample.pnc, "taskname": "asr"}]  # fmt: skip
    for target, text in sample.translations:
        pnc = "yes" if is_punctuated(text) else "no"
        lines.append(common | {"text": text, "lang": target, "target_lang": target,
                               "pnc": pnc, "taskname": "ast"})  # fmt: skip
    return lines


def export_nemo(
    samples: Iterable[Sample], out: Path, progress: Callable[[Sample], None] = lambda s: None
) -> dict[str, int]:
    """Write the manifests and FLAC files; returns manifest lines per split."""
    out = Path(out)
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    handles: dict[str, object] = {}
    counts: dict[str, int] = {}
    try:
        for sample in samples:
            relative = f"{AUDIO_DIR}/{member_name(sample.segment_id)}.flac"
            if (out / relative).exists():
                raise ExportError(
                    f"{out / relative}: two segments share this file name "
                    f"(one is {sample.segment_id})"
                )
            (out / relative).write_bytes(sample.flac)
            if sample.split not in handles:
                handles[sample.split] = (out / f"{sample.split}.jsonl").open("w", encoding="utf-8")
            for line in manifest_lines(sample, relative):
                handles[sample.split].write(json.dumps(line, ensure_ascii=False) + "\n")
                counts[sample.split] = counts.get(sample.split, 0) + 1
            progress(sample)
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def check_nemo(out: Path) -> list[Entry]:
    """Every manifest line, read by NeMo's `LazyNeMoIterator`, with its audio decoded."""
    from nemo.collections.common.data.lhotse.nemo_adapters import LazyNeMoIterator

    out = Path(out)
    manifests = sorted(out.glob("*.jsonl"))
    if not manifests:
        raise ExportError(f"{out}: no NeMo manifest (*.jsonl)")
    for manifest in manifests:  # before NeMo resolves paths, which may reach anywhere
        for number, line in enumerate(manifest.open(encoding="utf-8"), start=1):
            inside(out, json.loads(line)["audio_filepath"], f"{manifest}:{number}")
    entries = []
    for manifest in manifests:
        for cut in LazyNeMoIterator(str(manifest)):
            (supervision,) = cut.supervisions
            entries.append(Entry(cut.custom["segment_id"], cut.custom["taskname"],
                                 supervision.text, supervision.language,
                                 cut.custom["source_lang"], mono(cut.load_audio())))  # fmt: skip
    return entries
