"""NeMo manifests: `<split>.jsonl` beside an `audio/` folder of FLAC files.

Each line has what NeMo's ASR and Canary (AED) models read: `audio_filepath` (relative to the
manifest's folder), `duration`, `text`, `lang`, and the prompt fields `source_lang`,
`target_lang`, `pnc` and `taskname`. A kept translation is a line of its own (`taskname: ast`,
the translation as `text`, `lang` its language) over the same audio file. Provenance
(`segment_id`, `license`, `attribution`) rides along; NeMo keeps unknown keys on the cut.

A row whose words were timed gets a CTM file, `ctm/<audio file stem>.ctm`, as NeMo Forced
Aligner writes one per utterance (NIST CTM: `<utterance> 1 <start> <duration> <word>`, seconds
from the start of the audio file), and its ASR line names it in NFA's field
`word_level_ctm_filepath`. Lhotse reads it (`SupervisionSet.with_alignment_from_ctm`), and
so does `check_nemo`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.export.readback import Entry, inside, mono
from pipeline.export.rows import ExportError, Sample, member_name
from pipeline.text.pnc import is_punctuated

AUDIO_DIR = "audio"
CTM_DIR = "ctm"
CTM_FIELD = "word_level_ctm_filepath"  # NeMo Forced Aligner's name for it


def manifest_lines(
    sample: Sample, audio_filepath: str, ctm_filepath: str | None = None
) -> list[dict]:
    """The ASR line (with its word timings' CTM file, if any) and one AST line per kept
    translation, as NeMo and Canary read them."""
    common = {"audio_filepath": audio_filepath, "duration": sample.duration,
              "source_lang": sample.lang, "segment_id": sample.segment_id,
              "license": sample.license, "attribution": sample.attribution}  # fmt: skip
    timed = {CTM_FIELD: ctm_filepath} if ctm_filepath else {}
    lines = [common | {"text": sample.text, "lang": sample.lang, "target_lang": sample.lang,
                       "pnc": sample.pnc, "taskname": "asr"} | timed]  # fmt: skip
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
    (out / CTM_DIR).mkdir(exist_ok=True)
    handles: dict[str, object] = {}
    counts: dict[str, int] = {}
    try:
        for sample in samples:
            stem = member_name(sample.segment_id)
            relative = f"{AUDIO_DIR}/{stem}.flac"
            if (out / relative).exists():
                raise ExportError(
                    f"{out / relative}: two segments share this file name "
                    f"(one is {sample.segment_id})"
                )
            (out / relative).write_bytes(sample.flac)
            ctm = f"{CTM_DIR}/{stem}.ctm" if sample.words else None
            if ctm:
                (out / ctm).write_text(ctm_text(stem, sample.words), encoding="utf-8")
            if sample.split not in handles:
                handles[sample.split] = (out / f"{sample.split}.jsonl").open("w", encoding="utf-8")
            for line in manifest_lines(sample, relative, ctm):
                handles[sample.split].write(json.dumps(line, ensure_ascii=False) + "\n")
                counts[sample.split] = counts.get(sample.split, 0) + 1
            progress(sample)
    finally:
        for handle in handles.values():
            handle.close()
    return counts


def ctm_text(utterance: str, words: tuple[tuple[str, float, float], ...]) -> str:
    """One CTM line per (word, start, end), to the millisecond (Lhotse keeps a word only if it
    ends within 1 ms of its supervision); a word cannot hold a space in CTM, so any is `_`."""
    return "".join(
        f"{utterance} 1 {start:.3f} {round(end, 3) - round(start, 3):.3f} "
        f"{'_'.join(word.split())}\n"
        for word, start, end in words
    )


def _ctm_words(cut, out: Path, where: str) -> tuple[tuple[str, float, float], ...]:
    """The cut's word timings from the CTM file its line names, as Lhotse reads CTM."""
    from lhotse import SupervisionSet

    if CTM_FIELD not in cut.custom:
        return ()
    path = inside(out, cut.custom[CTM_FIELD], where, CTM_FIELD)
    supervisions = SupervisionSet.from_segments(cut.supervisions).with_alignment_from_ctm(path)
    (supervision,) = supervisions
    items = (supervision.alignment or {}).get("word", [])
    return tuple((item.symbol, item.start, item.end) for item in items)


def check_nemo(out: Path) -> list[Entry]:
    """Every manifest line, read by NeMo's `LazyNeMoIterator`, with its audio decoded and
    its word timings read from its CTM file."""
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
            words = _ctm_words(cut, out, f"{manifest}: {cut.custom['segment_id']}")
            entries.append(Entry(cut.custom["segment_id"], cut.custom["taskname"],
                                 supervision.text, supervision.language,
                                 cut.custom["source_lang"], mono(cut.load_audio()),
                                 words))  # fmt: skip
    return entries
