"""Arrow schemas of every table that stages pass to each other.

Field names follow Lhotse's vocabulary where one exists (`recording_id`, `offset`,
`duration`, `text`, `lang`); no stage invents its own spelling. Each stage's output schema
is the previous one plus the columns it adds, so provenance travels with every row.
"""

from __future__ import annotations

import pyarrow as pa

VERSIONS = pa.map_(pa.string(), pa.string())
"""Stage name -> "version[:model]" of every stage that touched the row."""

PROVENANCE_FIELDS = [
    pa.field("source", pa.string(), nullable=False),
    pa.field("license", pa.string(), nullable=False),  # SPDX id or LicenseRef-…
    pa.field("license_text", pa.string()),  # as the source states it
    pa.field("attribution", pa.string()),
    pa.field("obligations", pa.list_(pa.string())),  # what the licence asks of users
]

SOURCE_FILES = pa.schema(
    [
        pa.field("recording_id", pa.string(), nullable=False),
        *PROVENANCE_FIELDS,
        pa.field("path", pa.string()),  # the audio file; null when the source holds bytes
        pa.field("audio_in", pa.binary()),  # encoded audio held inside a dataset (hf)
        pa.field("offset", pa.float64()),  # a window of the file, when the source cuts one
        pa.field("declared_duration", pa.float64()),  # the window's length, or the file's
        pa.field("declared_languages", pa.list_(pa.string())),
        pa.field("text_source", pa.string()),  # the source's own transcript, if any
        pa.field("quarantine_reason", pa.string()),
    ]
)
"""One row per recording that a source lists: the input of `standardise`. A row the source
lists but that cannot be used (a path outside the source folder, a refused per-file licence)
arrives already quarantined."""

RECORDINGS = pa.schema(
    [
        *SOURCE_FILES,
        pa.field("sample_rate_in", pa.int32()),
        pa.field("channels_in", pa.int32()),
        pa.field("duration", pa.float64()),
        pa.field("lost_share", pa.float64()),  # of the declared audio, what failed to decode
        pa.field("sha256", pa.string()),
        pa.field("audio", pa.binary()),  # FLAC, 16 kHz mono; null when quarantined
        pa.field("versions", VERSIONS),
    ]
)
"""Standardised recordings. `duplicate_of` is derived across shards (see `DUPLICATES`)."""

DUPLICATES = pa.schema(
    [
        pa.field("recording_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
    ]
)
"""Recordings whose decoded audio equals an earlier recording's (by sha256)."""

SPAN = pa.struct([pa.field("start", pa.float64()), pa.field("end", pa.float64())])
"""A time span in seconds from the start of the recording."""

TIMED_TEXT = pa.struct([*SPAN, pa.field("text", pa.string())])
"""A stretch of transcript with its span: a phrase (Whisper segment) or a word."""

SEGMENTS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("recording_id", pa.string(), nullable=False),
        *PROVENANCE_FIELDS,
        pa.field("declared_languages", pa.list_(pa.string())),
        pa.field("offset", pa.float64(), nullable=False),
        pa.field("duration", pa.float64(), nullable=False),
        pa.field("speech_duration", pa.float64()),  # VAD speech inside the chunk
        pa.field("speech_regions", pa.list_(SPAN)),  # VAD speech inside the chunk
        pa.field("versions", VERSIONS),
    ]
)
"""Chunks of at most `max_chunk_s` cut at pauses: the unit of the first ASR pass."""

PASS1 = pa.schema(
    [
        *SEGMENTS,
        pa.field("lang", pa.string()),  # audio language of the recording (Whisper LID)
        pa.field("lang_prob", pa.float32()),
        pa.field("gate_reason", pa.string()),  # why the recording fails the language gate
        pa.field("lang_doubt", pa.string()),  # kept on weak language evidence: which witness
        pa.field("text", pa.string()),  # null when the recording failed the gate
        pa.field("avg_logprob", pa.float32()),
        pa.field("no_speech_prob", pa.float32()),
        pa.field("phrases", pa.list_(TIMED_TEXT)),
        pa.field("words", pa.list_(TIMED_TEXT)),  # empty where the backend cannot align words
    ]
)
"""Pass 1: language per recording, and a timed first transcript of every chunk."""

UTTERANCES = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("recording_id", pa.string(), nullable=False),
        *PROVENANCE_FIELDS,
        pa.field("declared_languages", pa.list_(pa.string())),
        pa.field("offset", pa.float64(), nullable=False),
        pa.field("duration", pa.float64(), nullable=False),
        pa.field("lang", pa.string()),
        pa.field("lang_prob", pa.float32()),
        pa.field("gate_reason", pa.string()),
        pa.field("lang_doubt", pa.string()),
        pa.field("text_pass1", pa.string()),  # the pass-1 phrases inside the utterance
        pa.field("text", pa.string()),  # pass 2: the utterance decoded on its own
        pa.field("avg_logprob", pa.float32()),
        pa.field("no_speech_prob", pa.float32()),
        pa.field("pass_wer", pa.float32()),  # word error rate of pass 1 against pass 2
        pa.field("words", pa.list_(TIMED_TEXT)),  # pass 2's words with their times
        pa.field("words_missing", pa.string()),  # why a text with words has none timed
        pa.field("text_written", pa.string()),  # `text` in written form (NeMo ITN), or as is
        pa.field("itn_status", pa.string()),  # whether NeMo's grammars read it, or why not
        pa.field("versions", VERSIONS),
    ]
)
"""Pass 2: utterances cut at sentence ends and pauses, each transcribed again on its own."""

QUALITY_FIELDS = [
    pa.field("dnsmos_sig", pa.float32()),  # DNSMOS P.835 speech quality, 1-5
    pa.field("dnsmos_bak", pa.float32()),  # background quality, 1-5
    pa.field("dnsmos_ovrl", pa.float32()),  # overall quality, 1-5
    pa.field("snr_db", pa.float32()),  # estimated signal-to-noise ratio
]
"""What the `quality` stage measures; null where a row was not rated (too short, gated)."""

SCORED = pa.schema([*UTTERANCES, *QUALITY_FIELDS])
"""Utterances with the quality of their audio."""

FILTERED = pa.schema(
    [
        *SCORED,
        pa.field("text_lang", pa.string()),
        pa.field("text_lang_prob", pa.float32()),
        pa.field("drop_reason", pa.string()),  # null when kept
    ]
)

PUNCTUATED = pa.schema(
    [
        *FILTERED,
        pa.field("text_asr", pa.string()),  # `text` as the ASR pass wrote it, before PnC
        pa.field("pnc_status", pa.string()),  # null: not attempted; "accepted"; or why not
        pa.field("pnc_cer", pa.float32()),  # normalised input vs the LLM's answer
    ]
)
"""Punctuation and capitals restored by an LLM where its answer kept every word."""

TRANSLATION = pa.struct(
    [
        pa.field("lang", pa.string()),  # the target language
        pa.field("text", pa.string()),  # null when refused
        pa.field("reason", pa.string()),  # why it was refused; null when kept
        pa.field("answer", pa.string()),  # the model's answer, kept to show why it failed
        pa.field("qe_score", pa.float64()),  # when a quality-estimation model is configured
    ]
)

TRANSLATED = pa.schema([*PUNCTUATED, pa.field("translations", pa.list_(TRANSLATION))])
"""One translation (or the reason for none) per target language of the row's source."""

MANIFEST = pa.schema([*TRANSLATED, pa.field("shard", pa.string())])
"""Every segment, kept and dropped, without audio; `shard` names the dataset file of a kept one."""

VOICE = pa.list_(pa.float32(), 256)
"""An L2-normed speaker embedding (Resemblyzer's voice encoder, `pipeline.speakers`)."""

SPEAKERS = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("recording_id", pa.string(), nullable=False),
        pa.field("speech_s", pa.float64()),  # the speech the embedding heard (VAD)
        pa.field("embedding", VOICE),  # the duration-weighted mean voice of its speech runs
        pa.field("speaker", pa.int32()),  # 0, 1, … within the recording: who holds most speech
        pa.field("speaker_share", pa.float32()),  # of the row's speech; < 1: several voices
        pa.field("n_speakers", pa.int32()),  # speakers among the recording's kept rows
        pa.field("versions", VERSIONS),
    ]
)
"""One row per row of `filter`: who speaks in each kept segment, within its recording (null
but `n_speakers` for a dropped row)."""

VOICES = pa.schema(
    [
        pa.field("recording_id", pa.string(), nullable=False),
        pa.field("speaker", pa.int32(), nullable=False),
        pa.field("runs", pa.int32()),  # speech runs (VAD regions inside kept rows) it holds
        pa.field("speech_s", pa.float64()),
        pa.field("embedding", VOICE),  # the normed mean of its runs' voices
        pa.field("loosest_merge", pa.float32()),  # the recording's margins (see clustering)
        pa.field("closest_apart", pa.float32()),
    ]
)
"""One row per speaker of a recording, written beside each `speakers` shard."""

SPEAKER_CLUSTERS = pa.schema(
    [
        pa.field("recording_id", pa.string(), nullable=False),
        pa.field("speaker", pa.int32(), nullable=False),
        pa.field("speaker_cluster", pa.string(), nullable=False),  # "<recording_id>#<speaker>"
        pa.field("split_group", pa.string(), nullable=False),  # the group's first recording
        pa.field("split", pa.string(), nullable=False),  # under the default ratios
    ]
)
"""Speakers across the corpus (derived across shards, like `DUPLICATES`): the same voice in
several recordings shares a `speaker_cluster`; recordings linked by shared clusters form a
`split_group`, which decides their split."""

SOURCES = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("license_text", pa.string()),
        pa.field("spdx_id", pa.string()),  # null when the licence is not recognised
        pa.field("allowed", pa.bool_(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("obligations", pa.list_(pa.string())),
        pa.field("language", pa.string()),
        pa.field("languages", pa.list_(pa.string())),  # all that the source declares
        pa.field("hours", pa.float64()),
        pa.field("files", pa.int64()),  # audio files measured; null for metadata sources
        pa.field("unreadable_files", pa.int64()),
        pa.field("labelled", pa.bool_()),
        pa.field("error", pa.string()),  # the source could not be read; no hours counted
    ]
)
"""The survey: one row per source, licence and language, with the verdict and hours."""

DATASET_AUDIO = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
"""The Hugging Face `Audio` feature's storage layout."""


def with_versions(table: pa.Table, stage: str, version: str) -> pa.Table:
    """Add `stage -> version` to the `versions` map of every row.

    All rows of a shard went through the same stages, so one map serves the whole table.
    """
    previous = table.column("versions")[0].as_py() if len(table) else None
    merged = dict(previous or []) | {stage: version}
    column = pa.array([list(merged.items())] * len(table), type=VERSIONS)
    return table.set_column(table.schema.get_field_index("versions"), "versions", column)
