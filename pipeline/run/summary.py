"""The end-of-run summary: hours in, hours kept, where the rest went, and how much of the speech
the VAD heard lies inside a row (speech coverage), from the SQL views. Segments are counted
from the shard stage's rows (`MANIFEST_ROWS`): the `segments` view's joins to the speakers'
rows would cost each count a pass over those too (3.6 s against 0.2 s on 10 M segments)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import duckdb

from manifests.views import CLUSTER_ROWS, MANIFEST_ROWS, connect
from pipeline.stages.filter import DROP_REASONS


@dataclass(frozen=True)
class RunSummary:
    recordings: int
    hours_in: float
    quarantined: dict[str, int]  # reason -> recordings
    duplicates: int
    without_speech: int  # usable recordings in which the VAD found no speech
    segments: int
    segments_kept: int
    hours_kept: float
    dropped: dict[str, tuple[int, float]]  # every drop reason -> (segments, hours), 0 too
    punctuation: dict[str, int]  # pnc_status -> kept segments (empty when PnC is off)
    translations: dict[tuple[str, str], int]  # (target, "kept" or refusal reason) -> segments
    written_forms: dict[tuple[str, str], int]  # (lang, itn_status) -> segments with text
    # source (and "overall") -> (VAD speech hours, speech hours inside rows, their ratio or None)
    speech_coverage: dict[str, tuple[float, float, float | None]]
    word_timings: dict[str, int]  # kept segments with words: "timed", or why not (words_missing)
    splits: dict[str, tuple[int, int]]  # split -> (recordings, speaker clusters) with speakers
    shared_speakers: int  # speaker clusters in more than one split (a corpus of one voice group)


def summarize(workdir: Path, views: duckdb.DuckDBPyConnection | None = None) -> RunSummary:
    """The summary of `workdir`, read from `views` when the caller has them open already."""
    with nullcontext(views) if views is not None else connect(Path(workdir)) as con:
        recordings, hours_in, duplicates = con.execute(
            "SELECT count(*), coalesce(sum(duration), 0) / 3600, count(duplicate_of) "
            "FROM recordings"
        ).fetchone()
        quarantined = dict(
            con.execute(
                "SELECT split_part(quarantine_reason, ':', 1) AS reason, count(*) FROM recordings "
                "WHERE quarantine_reason IS NOT NULL GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        (without_speech,) = con.execute(
            "SELECT count(*) FROM recordings r WHERE quarantine_reason IS NULL "
            "AND duplicate_of IS NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {MANIFEST_ROWS} s WHERE s.recording_id = r.recording_id)"
        ).fetchone()
        segments, kept, hours_kept = con.execute(
            "SELECT count(*), count(*) FILTER (drop_reason IS NULL), "
            f"coalesce(sum(duration) FILTER (drop_reason IS NULL), 0) / 3600 FROM {MANIFEST_ROWS}"
        ).fetchone()
        found = {
            reason: (count, hours)
            for reason, count, hours in con.execute(
                "SELECT drop_reason, sum(segments), sum(hours) FROM drops GROUP BY drop_reason"
            ).fetchall()
        }
        punctuation = dict(
            con.execute(
                f"SELECT pnc_status, count(*) FROM {MANIFEST_ROWS} WHERE pnc_status IS NOT NULL "
                "GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        )
        translations = {
            (lang, outcome): count
            for lang, outcome, count in con.execute(
                "SELECT lang, outcome, count(*) AS n FROM (SELECT lang, "
                "coalesce(reason, 'kept') AS outcome FROM translations) GROUP BY lang, outcome "
                "ORDER BY lang, outcome <> 'kept', n DESC, outcome"
            ).fetchall()
        }
        written_forms = {
            (lang, status): count
            for lang, status, count in con.execute(
                f"SELECT coalesce(lang, '?'), itn_status, count(*) FROM {MANIFEST_ROWS} "
                "WHERE itn_status IS NOT NULL GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        }
        speech_coverage = {
            source: (speech or 0.0, covered or 0.0, coverage)
            for source, speech, covered, coverage in con.execute(
                "SELECT source, speech_hours, covered_hours, coverage FROM speech_coverage"
            ).fetchall()
        }
        word_timings = dict(
            con.execute(
                f"SELECT coalesce(words_missing, 'timed'), count(*) FROM {MANIFEST_ROWS} "
                "WHERE drop_reason IS NULL AND (len(words) > 0 OR words_missing IS NOT NULL) "
                "GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        )
        splits = {
            split: (recordings_in, clusters)
            for split, recordings_in, clusters in con.execute(
                "SELECT split, count(DISTINCT recording_id), count(DISTINCT speaker_cluster) "
                f"FROM {CLUSTER_ROWS} GROUP BY split ORDER BY split"
            ).fetchall()
        }
        (shared_speakers,) = con.execute(
            f"SELECT count(*) FROM (SELECT speaker_cluster FROM {CLUSTER_ROWS} GROUP BY 1 "
            "HAVING count(DISTINCT split) > 1)"
        ).fetchone()
    # Every rule in the order it is checked, so a rule that dropped nothing shows as 0.
    dropped = {reason: found.pop(reason, (0, 0.0)) for reason in DROP_REASONS} | found
    return RunSummary(
        recordings,
        hours_in,
        quarantined,
        duplicates,
        without_speech,
        segments,
        kept,
        hours_kept,
        dropped,
        punctuation,
        translations,
        written_forms,
        speech_coverage,
        word_timings,
        splits,
        shared_speakers,
    )
