"""The explorer's pages and audio, as a FastAPI app over one workdir.

Every page is rendered on the server from the workdir's views; the Segments table is also
answered as a fragment to htmx requests, so filtering and paging swap the table alone and
keep their state in the URL. Requests name segments by id only.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from explorer import audio
from explorer.byte_range import ranged_response
from explorer.diff import word_diff
from explorer.figures import rule_figures
from explorer.store import (
    DROPPED,
    KEPT,
    PAGE_SIZE,
    TABLE_COLUMNS,
    QueryError,
    SegmentQuery,
    Store,
)
from manifests.views import SEGMENT_COLUMNS
from pipeline.audio.decode import AudioError
from pipeline.run.report import gather
from pipeline.run.summary import summarize

HERE = Path(__file__).parent


def create_app(workdir: Path) -> FastAPI:
    """The app for `workdir`; its views are opened now, so a broken workdir fails here."""
    store = Store(Path(workdir))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        store.close()

    app = FastAPI(title="vaglio explore", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals |= {"workdir": str(workdir), "KEPT": KEPT, "DROPPED": DROPPED}

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def missing(request: Request, segment_id: str) -> HTMLResponse:
        return page(request, "missing.html", 404, segment_id=segment_id)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        return page(
            request,
            "overview.html",
            summary=summarize(store.workdir),
            report=gather(store.workdir, examples_per_reason=0),
            by_source=store.hours_by_source_and_language(),
            licences=store.licences(),
        )

    @app.get("/segments", response_class=HTMLResponse)
    def segments(
        request: Request,
        source: str = "",
        lang: str = "",
        drop_reason: str = "",
        license: str = "",
        text: str = "",
        where: str = "",
        sort: str = "",
        desc: bool = False,
        page_number: int = Query(1, alias="page", ge=1),
    ):
        query = SegmentQuery(source, lang, drop_reason, license, text, where, sort, desc,
                             page_number)  # fmt: skip
        fragment = "HX-Request" in request.headers and "HX-History-Restore-Request" not in (
            request.headers
        )
        context = {
            "query": query,
            "choices": store.choices,
            "columns": TABLE_COLUMNS,
            "sortable": SEGMENT_COLUMNS,
            "page_size": PAGE_SIZE,
        }
        try:
            context["result"] = store.segments(query)
            status = 200
        except QueryError as error:
            context["error"] = str(error)
            status = 400
        return page(request, "_table.html" if fragment else "segments.html", status, **context)

    @app.get("/segment", response_class=HTMLResponse)
    def segment(request: Request, segment_id: str = Query(..., alias="id")):
        row = store.segment(segment_id)
        if row is None:
            return missing(request, segment_id)
        try:
            waveform = audio.waveform_svg_path(audio.samples(store.workdir, row))
        except (audio.AudioMissing, AudioError, OSError):
            waveform = None
        pass1, pass2 = word_diff(row["text_pass1"], row["text_asr"] or row["text"])
        return page(
            request,
            "segment.html",
            row=row,
            waveform=waveform,
            waveform_size=(audio.WAVEFORM_WIDTH, audio.WAVEFORM_HEIGHT),
            pass1=pass1,
            pass2=pass2,
            figures=rule_figures(row),
            neighbours=store.neighbours(row["recording_id"], segment_id),
        )

    @app.get("/audio")
    def segment_audio(request: Request, segment_id: str = Query(..., alias="id")):
        row = store.segment(segment_id)
        if row is None:
            return Response(status_code=404)
        try:
            data = audio.segment_flac(store.workdir, row)
        except (audio.AudioMissing, AudioError, OSError) as error:
            return Response(str(error), status_code=404, media_type="text/plain")
        return ranged_response(data, request.headers.get("range"), "audio/flac")

    @app.get("/drops", response_class=HTMLResponse)
    def drops(request: Request, n: int = Query(5, ge=1, le=50), seed: int = 0):
        return page(request, "drops.html", samples=store.drop_samples(n, seed), n=n, seed=seed)

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request):
        quarantined, duplicates = store.quarantine()
        return page(request, "quarantine.html", quarantined=quarantined, duplicates=duplicates)

    return app
