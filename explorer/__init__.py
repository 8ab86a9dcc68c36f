"""`vaglio explore`: a read-only local web app to see and hear what a curation did.

Why FastAPI with Jinja2 templates and a little htmx: every page is a table or a player over
DuckDB queries, so server-rendered HTML says it all, with no frontend build and no JavaScript
of ours; FastAPI (with Starlette and uvicorn) is already in every vaglio install through
Prefect. htmx (0BSD, `static/htmx.min.js`, version 2.0.11 from the npm package `htmx.org`,
vendored since the app must work offline) swaps the Segments table in place as filters
change; without it the same links and forms load whole pages. Dash or Panel would bring a
reactive framework and its assets for what is mostly tables.

The curation library never imports this package; the CLI imports it only when `explore` runs.
"""
