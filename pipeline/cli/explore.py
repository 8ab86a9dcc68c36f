"""`vaglio explore`: see and hear a curated workdir in the browser (the `explorer` package,
imported only when the command runs)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import Workdir, app, console, fail, require_curation


@app.command("explore")
def explore_command(
    workdir: Workdir,
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help="Port to listen on; 0 picks a free one.")] = 8765,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on; other than 127.0.0.1 only when you mean it.")
    ] = "127.0.0.1",
) -> None:  # fmt: skip
    """Browse a curated workdir in a local web app: the funnel, every segment with its audio,
    waveform and the two ASR passes compared, the drops per rule to listen to, quarantine.

    Read-only: nothing is written to the workdir. Stop it with Ctrl-C.
    """
    if not workdir.is_dir():
        raise fail(f"{workdir}: no such workdir")
    require_curation(workdir)
    import duckdb

    from explorer.app import create_app
    from explorer.serve import ServeError, bind, is_local, serve, url_of

    try:
        sock = bind(host, port)
    except ServeError as error:
        raise fail(str(error)) from None
    if not is_local(host):
        console.print(
            f"[yellow]warning:[/yellow] listening on {escape(host)}: anyone who can reach "
            "this machine can read the workdir's transcripts and hear its audio"
        )
    try:
        explorer = create_app(workdir)  # the views are read before the URL says it is ready
        print(f"vaglio explore: {url_of(sock)} (Ctrl-C stops it)", flush=True)
        serve(explorer, sock)
    except KeyboardInterrupt:
        pass  # uvicorn has shut down already and re-raised Ctrl-C
    except duckdb.Error as error:
        raise fail(str(error).splitlines()[0]) from None
    finally:
        sock.close()
    console.print("stopped")
