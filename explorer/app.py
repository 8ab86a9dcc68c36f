"""The explorer's pages and audio, as a FastAPI app over one workdir.

Every page is rendered on the server from the workdir's views; the Segments table is also
answered as a fragment to htmx requests, so filtering and paging swap the table alone and
keep their state in the URL. Requests name segments by id only.

A page is served before anything needs a pass over every segment: the Overview's figures and
the filters' values are fetched by htmx once the page is shown (and kept), so a large workdir
opens at once and fills in.

What only a segment's page needs (audio decoding, the rules' figures) is imported by its
routes, as the store imports the pipeline's report for the Overview: `vaglio explore` serves
its first page within a second of starting.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from explorer.byte_range import ranged_response
from explorer.store import (
    PAGE_SIZE,
    TABLE_COLUMNS,
    Choices,
    QueryError,
    SegmentQuery,
    Store,
)
from manifests.views import SEGMENT_COLUMNS

HERE = Path(__file__).parent


def create_app(workdir: Path) -> FastAPI:
    """The app for `workdir`; its views are opened now (nothing is scanned yet), so a broken
    workdir fails here."""
    store = Store(Path(workdir))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        store.close()

    app = FastAPI(title="vaglio explore", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["workdir"] = str(workdir)

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def missing(request: Request, segment_id: str) -> HTMLResponse:
        return page(request, "missing.html", 404, segment_id=segment_id)

    def from_htmx(request: Request) -> bool:
        """A request for a fragment (not htmx restoring a page it has no copy of)."""
        return "HX-Request" in request.headers and (
            "HX-History-Restore-Request" not in request.headers
        )

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request):
        ready = store.overview.ready
        return page(request, "overview.html", overview=store.overview.get() if ready else None)

    @app.get("/overview", response_class=HTMLResponse)
    def overview_figures(request: Request):
        """The Overview's figures: the fragment the page fetches, or the page with them."""
        name = "_overview.html" if from_htmx(request) else "overview.html"
        return page(request, name, overview=store.overview.get())

    @app.get("/segments", response_class=HTMLResponse)
    def segments(
        request: Request,
        background: BackgroundTasks,
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
        ready = store.choices.ready
        if not ready:  # counted after this response, for the filters' request (or a reload)
            background.add_task(store.choices.get)
        context = {
            "query": query,
            "choices": store.choices.get() if ready else Choices.chosen(query),
            "choices_ready": ready,
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
        return page(
            request, "_table.html" if from_htmx(request) else "segments.html", status, **context
        )

    @app.get("/segments/choices", response_class=HTMLResponse)
    def segment_choices(
        request: Request,
        source: str = "",
        lang: str = "",
        drop_reason: str = "",
        license: str = "",
    ):
        """Every filter's values, swapped by htmx into the Segments page's selects."""
        query = SegmentQuery(source, lang, drop_reason, license)
        return page(request, "_choices.html", query=query, choices=store.choices.get())

    @app.get("/segment", response_class=HTMLResponse)
    def segment(request: Request, segment_id: str = Query(..., alias="id")):
        from explorer import audio
        from explorer.diff import word_diff
        from explorer.figures import rule_figures
        from pipeline.audio.decode import AudioError

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
        from explorer import audio
        from pipeline.audio.decode import AudioError

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
