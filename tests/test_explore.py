"""`vaglio explore` as a curator uses it: started from the command line on the curated demo
workdir, driven in a real Chromium (Debian's, through Playwright), stopped with Ctrl-C.

With VAGLIO_SCREENSHOTS=docs the page tests also save the screenshots the README shows.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("VAGLIO_SCREENSHOTS")
ROOT = Path(__file__).resolve().parents[1]


def sql(workdir: Path, query: str) -> list[dict]:
    result = CliRunner().invoke(app, ["sql", query, "-w", str(workdir), "-f", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def plain(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def listing(workdir: Path) -> dict[str, tuple[int, int]]:
    """Every path under the workdir with its size and mtime: what a write would change."""
    return {
        str(p.relative_to(workdir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(workdir.rglob("*"))
    }


def start(workdir: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "explore", "-w", str(workdir), *options],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def workdir(curated) -> Path:
    return curated[0]


@pytest.fixture(scope="module")
def before(workdir) -> dict:
    return listing(workdir)


@pytest.fixture(scope="module")
def server(workdir, before):
    """(the URL the command printed, the process); Ctrl-C stops it at the end."""
    process = start(workdir, "--port", "0")
    line = process.stdout.readline()
    assert line.startswith("vaglio explore: http://127.0.0.1:"), line + process.stderr.read()
    yield line.split()[2], process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: make system-packages installs it")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    yield context.new_page()
    context.close()


def screenshot(page, name: str) -> None:
    """Save a small PNG of the page for the README (only when VAGLIO_SCREENSHOTS is set)."""
    if not SCREENSHOTS:
        return
    from PIL import Image

    path = ROOT / SCREENSHOTS / f"explore-{name}.png"
    page.screenshot(path=path)
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def test_overview_shows_the_totals_of_vaglio_sql(server, page, workdir):
    url, _ = server
    [totals] = sql(
        workdir,
        "SELECT count(*) AS segments, count(*) FILTER (drop_reason IS NULL) AS kept, "
        "sum(duration) FILTER (drop_reason IS NULL) / 3600 AS hours_kept FROM segments",
    )
    [recordings] = sql(
        workdir,
        "SELECT count(*) AS n, sum(duration) / 3600 AS hours, count(quarantine_reason) AS q "
        "FROM recordings",
    )
    page.goto(url)
    assert page.text_content("#segments") == str(totals["segments"])
    assert page.text_content("#segments-kept") == str(totals["kept"])
    assert page.text_content("#hours-kept") == f"{totals['hours_kept']:.3f}"
    assert page.text_content("#recordings") == str(recordings["n"])
    assert page.text_content("#hours-in") == f"{recordings['hours']:.3f}"
    assert page.text_content("#quarantined") == str(recordings["q"]) != "0"
    drops = sql(workdir, "SELECT drop_reason, count(*) AS n FROM segments GROUP BY ALL")
    shown = page.eval_on_selector_all(
        "#drops tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    counts = {cells[0]: cells[1] for cells in shown}
    assert {r["drop_reason"]: str(r["n"]) for r in drops if r["drop_reason"]}.items() <= (
        counts.items()
    )
    screenshot(page, "overview")


def markdown_table(text: str, title: str) -> list[list[str]]:
    """The rows of the Markdown table under `## title`."""
    section = text.split(f"## {title}\n", 1)[1].strip().split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:]]


def test_the_overview_funnel_is_the_reports(server, page, workdir, tmp_path):
    """Step by step, the hours `vaglio report` writes (on a copy: it writes into its workdir)."""
    url, _ = server
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy)
    result = CliRunner().invoke(app, ["report", "-w", str(copy)])
    assert result.exit_code == 0, result.output
    reported = markdown_table((copy / "report" / "report.md").read_text(), "Where the hours went")
    assert len(reported) >= 5
    page.goto(url)
    page.wait_for_selector("#funnel")
    shown = page.eval_on_selector_all(
        "#funnel tr:not(:first-child)",
        "rows => rows.map(r => [...r.cells].slice(0, 2).map(c => c.textContent.trim()))",
    )
    assert shown == reported


def test_a_filter_narrows_the_table_to_its_count(server, page, workdir):
    url, _ = server
    [total] = sql(workdir, "SELECT count(*) AS n FROM segments")
    [english] = sql(workdir, "SELECT count(*) AS n FROM segments WHERE lang = 'en'")
    assert 0 < english["n"] < total["n"]
    page.goto(url + "segments")
    assert page.text_content("#count") == str(total["n"])
    page.select_option("select[name=lang]", "en")  # htmx swaps the table in place
    page.wait_for_function(f"document.querySelector('#count').textContent === '{english['n']}'")
    languages = page.locator("#segments-table tr td:nth-child(3)").all_text_contents()
    assert languages and set(languages) == {"en"}
    assert "lang=en" in page.url  # the filter is in the address, to share or reload
    page.fill("textarea[name=where]", "duration > 10")
    page.click("button[type=submit]")
    [long] = sql(workdir, "SELECT count(*) AS n FROM segments WHERE lang = 'en' AND duration > 10")
    page.wait_for_function(f"document.querySelector('#count').textContent === '{long['n']}'")
    page.goto(url + "segments?sort=duration&desc=1")
    durations = page.locator("#segments-table tr td:nth-child(4)").all_text_contents()
    assert [float(d) for d in durations] == sorted(map(float, durations), reverse=True)
    page.goto(url + "segments")
    screenshot(page, "segments")


@pytest.mark.parametrize(
    "where",
    [
        "true; DROP VIEW segments",
        "segment_id IN (SELECT * FROM read_csv('/etc/passwd'))",
        "true; COPY (SELECT 1) TO 'x.csv'",
    ],
)
def test_a_where_clause_that_writes_or_reads_files_is_refused(server, page, where):
    url, _ = server
    page.goto(url + "segments")
    page.fill("textarea[name=where]", where)
    page.click("button[type=submit]")
    page.wait_for_selector("#query-error")
    assert page.text_content("#query-error").startswith("refused:")


@pytest.mark.parametrize(
    "where", ["duration > 2 AND lang = 'en'", "speaker = 0 AND split IS NOT NULL", "true"]
)
def test_a_typed_where_selects_what_vaglio_sql_selects(workdir, where):
    """Whether the WHERE reads a speaker column or not (the explorer joins the speakers' rows
    only when it does), the table shows the rows and the count `vaglio sql` gives."""
    from fastapi.testclient import TestClient

    from explorer.app import create_app

    [total] = sql(workdir, f"SELECT count(*) AS n FROM segments WHERE {where}")
    first = sql(workdir, f"SELECT segment_id FROM segments WHERE {where} ORDER BY 1 LIMIT 50")
    assert total["n"] > 0
    with TestClient(create_app(workdir)) as client:
        shown = client.get("/segments", params={"where": where, "sort": "segment_id"})
    assert shown.status_code == 200
    assert f'<span id="count">{total["n"]}</span>' in shown.text
    at = [shown.text.index(f">{html.escape(r['segment_id'])}</a>") for r in first]
    assert at == sorted(at)


def test_a_segment_plays_its_own_audio(server, page, workdir):
    url, _ = server
    for kept in (True, False):  # a dataset copy, and a cut of the standardised recording
        [row] = sql(
            workdir,
            f"SELECT segment_id, duration FROM segments WHERE shard IS {'NOT' * kept} NULL "
            "AND duration > 1 ORDER BY segment_id LIMIT 1",
        )
        page.goto(url + "segment?id=" + quote(row["segment_id"], safe=""))
        page.wait_for_function("document.querySelector('#player').readyState >= 1")
        duration = page.evaluate("document.querySelector('#player').duration")
        assert duration == pytest.approx(row["duration"], abs=0.05)
        assert page.locator("svg.waveform path").count() == 1


def test_the_diff_marks_where_the_passes_differ(server, page, workdir):
    url, _ = server
    rows = sql(
        workdir,
        "SELECT segment_id, text_pass1, coalesce(text_asr, text) AS pass2 FROM segments "
        "WHERE lower(regexp_replace(text_pass1, '[^\\w\\s]', '', 'g')) <> "
        "lower(regexp_replace(coalesce(text_asr, text), '[^\\w\\s]', '', 'g')) "
        "ORDER BY segment_id LIMIT 1",
    )
    assert rows, "the demo curation has no segment whose passes differ"
    [row] = rows
    page.goto(url + "segment?id=" + quote(row["segment_id"], safe=""))
    first = page.locator("#pass1 del").all_text_contents()
    second = page.locator("#pass2 ins").all_text_contents()
    assert first or second
    # Every word is shown, and without the marked words the passes say the same.
    assert page.text_content("#pass1").split() == row["text_pass1"].split()
    assert page.text_content("#pass2").split() == row["pass2"].split()
    unmarked = [
        page.evaluate(
            f"[...document.querySelector('{cell}').childNodes]"
            ".filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join(' ')"
        )
        for cell in ("#pass1", "#pass2")
    ]
    assert plain(unmarked[0]) == plain(unmarked[1])
    screenshot(page, "segment")


def test_drops_and_quarantine_pages(server, page, workdir):
    url, _ = server
    page.goto(url + "drops")
    reasons = sql(workdir, "SELECT DISTINCT drop_reason FROM segments WHERE drop_reason <> ''")
    for row in reasons:
        assert page.locator(f"h2[id='{row['drop_reason']}']").count() == 1
    assert page.locator("audio").count() >= len(reasons)
    screenshot(page, "drops")
    page.goto(url + "quarantine")
    quarantined = sql(workdir, "SELECT recording_id FROM recordings WHERE quarantine_reason <> ''")
    shown = page.locator("#quarantined tr td:first-child").all_text_contents()
    assert sorted(shown) == sorted(r["recording_id"] for r in quarantined)
    screenshot(page, "quarantine")


def test_a_segment_whose_recording_is_gone_still_shows(workdir, tmp_path):
    """The standardised audio moved away: a dropped segment's page still shows, and its audio
    answers why it is missing."""
    from fastapi.testclient import TestClient

    from explorer.app import create_app

    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("standardise"))
    [row] = sql(copy, "SELECT segment_id FROM segments WHERE shard IS NULL ORDER BY 1 LIMIT 1")
    with TestClient(create_app(copy)) as client:
        shown = client.get("/segment", params={"id": row["segment_id"]})
        assert shown.status_code == 200 and row["segment_id"] in shown.text
        audio = client.get("/audio", params={"id": row["segment_id"]})
        assert audio.status_code == 404 and "no standardised audio" in audio.text


def test_a_run_older_than_a_column_sorts_by_it(workdir, tmp_path):
    """Shards written before `dnsmos_ovrl` existed: the column reads as null, in the explorer
    as in `vaglio sql`, and the table still sorts by it."""
    from fastapi.testclient import TestClient

    from explorer.app import create_app

    copy = tmp_path / "work"
    shutil.copytree(workdir, copy)
    for path in (copy / "shard").glob("*.parquet"):
        table = pq.read_table(path)
        if "dnsmos_ovrl" in table.column_names:
            pq.write_table(table.drop_columns(["dnsmos_ovrl"]), path)
    [total] = sql(copy, "SELECT count(*) AS n, count(dnsmos_ovrl) AS scored FROM segments")
    assert total["n"] > 0 and total["scored"] == 0
    with TestClient(create_app(copy)) as client:
        shown = client.get("/segments", params={"sort": "dnsmos_ovrl", "desc": "1"})
        assert shown.status_code == 200
        assert f'<span id="count">{total["n"]}</span>' in shown.text


def test_the_first_page_waits_for_nothing_only_other_pages_need(workdir):
    """The explorer opens a workdir and answers the first page of Segments without pandas, audio
    decoding or the pipeline's stages: on a large workdir they would cost most of its start."""
    code = (
        "import json, sys\nfrom pathlib import Path\nimport pipeline.cli\n"
        "from explorer.app import create_app\nfrom explorer.store import SegmentQuery, Store\n"
        f"workdir = Path({str(workdir)!r})\ncreate_app(workdir)\n"
        "page = Store(workdir).segments(SegmentQuery())\nassert page.rows and page.total\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": str(ROOT)}, check=True)  # fmt: skip
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    later = {"pandas", "pyarrow.dataset", "av", "pipeline.stages.filter", "pipeline.run.report"}
    assert sorted(modules & later) == []


def test_audio_urls_take_ids_only(server):
    url, _ = server
    import httpx

    for bad in ("../../etc/passwd", "/etc/passwd", "dataset/data"):
        response = httpx.get(url + "audio", params={"id": bad})
        assert response.status_code == 404
    assert httpx.get(url + "audio", params={"path": "/etc/passwd"}).status_code == 422


def test_a_busy_port_or_a_missing_workdir_is_one_line(workdir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["explore", "-w", str(workdir), "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"
    result = CliRunner().invoke(app, ["explore", "-w", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such workdir" in result.output


def test_ctrl_c_stops_it_and_nothing_was_written(server, workdir, before):
    """Runs last: the pages above were all served, then the listing is compared."""
    _, process = server
    process.send_signal(signal.SIGINT)
    asked = time.monotonic()
    _, said = process.communicate(timeout=20)
    assert time.monotonic() - asked < 10
    assert process.returncode == 0 and said.strip().endswith("stopped"), said
    assert listing(workdir) == before
