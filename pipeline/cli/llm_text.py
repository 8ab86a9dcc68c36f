"""`vaglio llm-text`: punctuation or translation of plain text rows, as a curation would do it."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import DEFAULT_LOCAL_MODEL, LocalModelOption, app, console
from pipeline.llm.base import GuidedDecoding

if TYPE_CHECKING:
    from pipeline.llm import LlmConfig
    from pipeline.text.llm_rows import TextOutcome


class TextStage(str, Enum):
    punctuate = "punctuate"
    translate = "translate"


Decoding = Enum("Decoding", {name: name for name in GuidedDecoding.__args__}, type=str)


@contextmanager
def _llm(
    configured: LlmConfig | None, local: str | None, decoding: str | None
) -> Iterator[LlmConfig]:
    """The model to ask: the config's, or the offline model `local` on a local server started
    for the run."""
    from pipeline.config import ConfigError

    if local:
        from pipeline.llm.local_server import local_server

        with local_server(local) as server:
            yield _with_decoding(server.llm_config(), decoding)
        return
    if configured is None:
        raise ConfigError("the config names no model for this stage: give --local or --config")
    yield _with_decoding(configured, decoding)


def _with_decoding(llm: LlmConfig, decoding: str | None) -> LlmConfig:
    return llm if decoding is None else dataclasses.replace(llm, guided_decoding=decoding)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


@app.command("llm-text")
def llm_text_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="Rows `text` or `id<TAB>text`; `-` or none reads stdin.",
            show_default=False,
        ),
    ] = None,
    stage: Annotated[TextStage, typer.Option("--stage", "-s")] = TextStage.punctuate,
    lang: Annotated[str, typer.Option("--lang", "-l", help="Language of the rows.")] = ...,
    target: Annotated[
        str | None,
        typer.Option("--to", help="Target language (translate).", show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Pipeline YAML: its `punctuate:` or `translate:` section."
        ),
    ] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local", help="Ask an offline model on a local CPU server (the llm-cpu extra)."
        ),
    ] = False,
    local_model: LocalModelOption = DEFAULT_LOCAL_MODEL,
    decoding: Annotated[
        Decoding | None,
        typer.Option(
            help="Override `llm.guided_decoding` (`off`: free generation).", show_default=False
        ),
    ] = None,
) -> None:
    """Punctuate or translate rows of text with the LLM and guards of a curation.

    Prints one JSON line per row: `line`, `id`, `input`, `output` (what the row keeps),
    `outcome` (`accepted`/`kept`, or why not), `reason` (null when the answer passed) and,
    for translation, `answer` (what the model said). Counts per outcome and how the answers
    were decoded go to stderr. The model is the config's (`punctuate.llm` or
    `translate.llm`), or an offline one on a local server with `--local` (Qwen2.5-Coder-1.5B
    unless `--local-model` says otherwise).

    Examples:

    * `printf 'we met in rome last year did you\\n' | vaglio llm-text --local --lang en`
    * `vaglio llm-text rows.tsv --stage translate --lang it --to en -c pipeline.yaml`
    """
    from pipeline.config import ConfigError, load_config
    from pipeline.extras import MissingExtraError
    from pipeline.llm import LlmRequestError, load_backend
    from pipeline.llm.local_server import LocalServerError
    from pipeline.stage import StageConfigError
    from pipeline.stages.filter import TextRowError, utf8_lines
    from pipeline.text.languages import is_language_code
    from pipeline.text.llm_rows import punctuate_rows, read_rows, translate_rows

    for option, code in (("--lang", lang), ("--to", target)):
        if code is not None and not is_language_code(code):
            raise _fail(f"{option} {code!r} is not an ISO 639 code (like 'en' or 'it')")
    if stage is TextStage.translate and target in (None, lang):
        raise _fail("--stage translate needs --to, a language other than --lang")
    try:
        settings = getattr(load_config(config), stage.value)
        if file is None or str(file) == "-":
            rows = read_rows(utf8_lines(sys.stdin.buffer))
        else:
            with file.open("rb") as raw:
                rows = read_rows(utf8_lines(raw))
        with _llm(settings.llm, local and local_model.value, decoding and decoding.value) as llm:
            backend = load_backend(llm)
            if stage is TextStage.punctuate:
                outcomes = punctuate_rows(rows, lang, backend, settings.guard)
            else:
                outcomes = translate_rows(rows, lang, target, backend, settings.guard)
    except TextRowError as error:
        raise _fail(f"{file or 'stdin'}: {error}") from None
    except (
        ConfigError,
        StageConfigError,
        MissingExtraError,
        LlmRequestError,
        LocalServerError,
    ) as error:
        raise _fail(str(error)) from None
    for outcome in outcomes:
        sys.stdout.write(json.dumps(outcome.record(), ensure_ascii=False) + "\n")
    _print_counts(outcomes, stage, llm)


def _print_counts(outcomes: list[TextOutcome], stage: TextStage, llm: LlmConfig) -> None:
    from pipeline.text.pnc import decoding_note

    counts = Counter(o.outcome for o in outcomes)
    passed = "accepted" if stage is TextStage.punctuate else "kept"
    console.print(
        f"{passed} {counts.pop(passed, 0)} of {len(outcomes)}"
        + "".join(f", {reason} {n}" for reason, n in counts.most_common())
    )
    if stage is TextStage.punctuate:
        console.print(f"decoding: {decoding_note(llm)}")
