"""`vaglio schedule`: recurring runs of vaglio's flows as deployments on a Prefect server.

A deployment is a flow (curate, survey, and any other in the `vaglio.flows` entry-point group)
with its parameters and a cron or interval schedule, registered on the server that
`PREFECT_API_URL` names. The server creates the runs; a `prefect worker` on the `process` work
pool executes them. Each deployment runs one at a time (a nightly run still busy when the next
is due makes that one wait), and carries the tag `vaglio` so that `list` and `rm` find it.
"""

from __future__ import annotations

import json
import math
import re
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.cli.common import app, console

DEFAULT_POOL = "vaglio"
TAG = "vaglio"
# A deployment name is shown in URLs and paths: letters, digits and . _ - , not a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_EVERY_S = (1.0, 366 * 24 * 3600.0)  # from once a second to once a year

schedule_app = typer.Typer(
    help="Recurring runs on a Prefect server: add, list and remove deployments.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(schedule_app, name="schedule")


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


@contextmanager
def prefect_server() -> Iterator[None]:
    """Fail with one line when no server is named or it cannot be reached: without one,
    Prefect would register the schedule in a throwaway server."""
    import httpx
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise _fail(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
        )
    try:
        yield
    except httpx.TransportError as error:
        raise _fail(f"cannot reach the Prefect server at {url}: {error}") from None


def load_flow(name: str):
    """The deployable flow registered as `name` in the `vaglio.flows` entry-point group."""
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="vaglio.flows")}
    if name not in found:
        raise _fail(f"--flow: unknown flow {name!r}; known: {sorted(found)}")
    return found[name].load()


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise _fail(f"--param: expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)  # numbers, booleans, lists
    except json.JSONDecodeError:
        return key, value


def flow_parameters(flow, named: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    """The run parameters: the options given, checked against what the flow accepts."""
    accepted = flow.parameters.properties
    required = set(flow.parameters.required or [])
    parameters = {k: v for k, v in named.items() if v is not None}
    parameters |= dict(_parse_param(p) for p in extra)
    unknown = sorted(set(parameters) - set(accepted))
    if unknown:
        raise _fail(f"flow {flow.name!r} takes no parameter {unknown}; it takes {sorted(accepted)}")
    missing = sorted(required - set(parameters))
    if missing:
        raise _fail(f"flow {flow.name!r} needs {missing}")
    return parameters


def _deployment_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise _fail(
            f"deployment name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. nightly-podcasts)"
        )
    return name


def _schedule(cron: str | None, every: float | None, timezone: str | None):
    """Prefect's schedule, after checks that Prefect leaves to the server (or to a traceback)."""
    from prefect.schedules import Cron, Interval

    if (cron is None) == (every is None):
        raise _fail("give exactly one of --cron and --every")
    low, high = _EVERY_S
    if every is not None and not (math.isfinite(every) and low <= every <= high):
        raise _fail(f"--every {every:g}: expected seconds from {low:g} to {high:g} (a year)")
    if timezone is not None and timezone not in zoneinfo.available_timezones():
        raise _fail(f"--timezone {timezone!r}: not an IANA time zone (e.g. Europe/Rome, UTC)")
    try:
        return Cron(cron, timezone=timezone) if cron else Interval(every, timezone=timezone)
    except ValueError as error:
        given = f"--cron {cron!r}" if cron else f"--every {every:g}"
        given += f" --timezone {timezone!r}" if timezone else ""
        raise _fail(f"{given}: {str(error).splitlines()[0]}") from None


def _ensure_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            console.print(f"created the process work pool {name!r}")


def _absolute(path: Path | None) -> str | None:
    return None if path is None else str(path.expanduser().resolve())


@schedule_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="Deployment name, e.g. nightly-podcasts.")],
    catalog: Annotated[Path | None, typer.Option(help="Catalog YAML.")] = None,
    workdir: Annotated[Path | None, typer.Option("--workdir", "-w", help="Run folder.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Licence policy YAML.")] = None,
    cron: Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 2 * * *".')] = None,
    every: Annotated[float | None, typer.Option(help="Or: run every N seconds.")] = None,
    timezone: Annotated[str | None, typer.Option(help="For --cron, e.g. Europe/Rome.")] = None,
    flow_name: Annotated[str, typer.Option("--flow", help="Which vaglio flow.")] = "curate",
    engine: Annotated[
        str | None, typer.Option(help="curate: prefect, threads or ray.", show_default=False)
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="curate --engine ray: HOST:PORT.", show_default=False)
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Any other flow parameter, KEY=VALUE (repeatable).")
    ] = None,
    pool: Annotated[str, typer.Option(help="Process work pool its worker polls.")] = DEFAULT_POOL,
    paused: Annotated[bool, typer.Option(help="Register it without starting it.")] = False,
) -> None:
    """Register (or update) a deployment that runs a flow on a schedule.

    Examples:

        vaglio schedule add nightly --catalog catalog.yaml --workdir /data/run --cron "0 2 * * *"

        vaglio schedule add weekly-survey --flow survey --catalog catalog.yaml
        --workdir /data/survey --cron "0 6 * * 1" --timezone Europe/Rome

    Paths are stored absolute: the worker resolves them on its machine. Runs wait for a worker:
    `prefect worker start --pool vaglio`.
    """
    name = _deployment_name(name)
    flow = load_flow(flow_name)
    named = {
        "catalog": _absolute(catalog),
        "workdir": _absolute(workdir),
        "config": _absolute(config),
        "policy": _absolute(policy),
        "engine": engine,
        "ray_address": ray_address,
    }
    parameters = flow_parameters(flow, named, param or [])
    schedule = _schedule(cron, every, timezone)
    with prefect_server():
        _deploy(flow, name, pool, schedule, paused, parameters)
    when = f"cron {cron!r}" if cron else f"every {every:g}s"
    when += f" ({timezone})" if timezone else ""
    console.print(
        f"[green]✓[/green] {flow.name}/{name}: {when}, on pool {pool!r}\n"
        f"  run it with: prefect worker start --pool {pool}"
    )


def _deploy(flow, name: str, pool: str, schedule, paused: bool, parameters: dict) -> None:
    from prefect.deployments.runner import EntrypointType

    _ensure_pool(pool)
    flow.deploy(
        name,
        work_pool_name=pool,
        build=False,
        push=False,
        schedules=[schedule],
        paused=paused,
        parameters=parameters,
        tags=[TAG],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,  # workers import the installed vaglio
        print_next_steps=False,
        ignore_warnings=True,
    )


def _vaglio_deployments(client) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    tagged = DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
    return client.read_deployments(deployment_filter=tagged)


def _describe(schedules: list) -> str:
    parts = []
    for entry in schedules:
        schedule = entry.schedule
        if getattr(schedule, "cron", None):
            text = f"cron {schedule.cron}" + (f" {schedule.timezone}" if schedule.timezone else "")
        elif getattr(schedule, "interval", None):
            text = f"every {schedule.interval.total_seconds():g}s"
        else:
            text = str(schedule)
        parts.append(text if entry.active else f"{text} (paused)")
    return ", ".join(parts) or "none"


@schedule_app.command("list")
def list_command() -> None:
    """The vaglio deployments on the server: schedule, parameters, last run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from rich.table import Table

    table = Table("deployment", "schedule", "pool", "parameters", "last run")
    with prefect_server(), get_client(sync_client=True) as client:
        flows = {}
        for deployment in _vaglio_deployments(client):
            if deployment.flow_id not in flows:
                flows[deployment.flow_id] = client.read_flow(deployment.flow_id).name
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            last = runs[0] if runs and runs[0].start_time else None
            table.add_row(
                f"{flows[deployment.flow_id]}/{deployment.name}",
                _describe(deployment.schedules) + (" · paused" if deployment.paused else ""),
                deployment.work_pool_name or "",
                escape(json.dumps(deployment.parameters)),
                f"{last.state_name} {last.start_time:%Y-%m-%d %H:%M}" if last else "never",
            )
    console.print(table)


@schedule_app.command("rm")
def remove_command(
    name: Annotated[str, typer.Argument(help="Deployment name, or FLOW/NAME.")],
) -> None:
    """Remove a deployment and its future runs (past runs and their outputs stay)."""
    from prefect.client.orchestration import get_client

    with prefect_server(), get_client(sync_client=True) as client:
        matches = []
        for deployment in _vaglio_deployments(client):
            full = f"{client.read_flow(deployment.flow_id).name}/{deployment.name}"
            if name in (deployment.name, full):
                matches.append((full, deployment))
        if not matches:
            raise _fail(f"no vaglio deployment named {name!r} (see `vaglio schedule list`)")
        if len(matches) > 1:
            raise _fail(f"{name!r} is ambiguous: {sorted(m[0] for m in matches)}; use FLOW/NAME")
        ((full, deployment),) = matches
        client.delete_deployment(deployment.id)
    console.print(f"removed {full}")
