"""CLI for joint statistics: `consortium stats run SPEC.toml`, `stats show JOB`, `stats list`, `stats rerun JOB`.

Each command talks to the member's own node (settings from --config) as its operator, with requests
signed by the member key; the node does the work and keeps the job across restarts.
"""
from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path

from node.cli.options import call_node, config_option, json_option, own_node, print_table
from node.errors import ConsortiumError

TERMINAL = ("PUBLISHED", "FAILED")


def load_spec(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConsortiumError(f"cannot read {path}: {exc.strerror}", reason="bad_argument", hint="check the path") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConsortiumError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}",
                              reason="bad_argument", hint="fix the spec file") from None


def wait_for(client, job: dict, show_progress: bool, timeout: float | None = None) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not show_progress) as progress:
        task = progress.add_task(f"job {job['id'][:12]}: opening", total=len(job["participants"]))
        while job["state"] not in TERMINAL:
            if timeout is not None and time.monotonic() - started > timeout:
                raise ConsortiumError(f"job {job['id']} still {job['state']} after {timeout:.0f} s", reason="timeout",
                                      hint=f"follow it with `consortium stats show {job['id']}`")
            time.sleep(0.5)
            job = call_node(client, "GET", f"/stats/jobs/{job['id']}", what="job status")
            p = job["progress"] or {}
            if p.get("batches_total"):
                progress.update(task, description=f"job {job['id'][:12]}: {p.get('phase', '')}",
                                total=p["batches_total"], completed=p.get("batches", 0))
            else:
                done = sum(1 for s in (p.get("participants") or {}).values() if s == "contributed")
                progress.update(task, description=f"job {job['id'][:12]}: {p.get('phase', job['state'].lower())}",
                                completed=done)
    return job


def rerun_hint(job: dict) -> str | None:
    """What to do about a failed job, naming only a command that will be accepted.

    ``stats rerun`` drops the missing participants (node/stats/service.py); a horizontal job needs two
    left, and a job whose every participant is missing would only ask them again.
    """
    missing = job["error"]["missing"] if job.get("error") else []
    if not missing:
        return None
    remaining = [p for p in job["participants"] if p not in set(missing)]
    if remaining and not (job["kind"] == "horizontal" and len(remaining) < 2):
        return f"re-run without {', '.join(missing)}: `consortium stats rerun {job['id']} --config NODE.toml`"
    return (f"a re-run without {', '.join(missing)} would leave too few participants: fix the cause (a grant to you, "
            "the participant's node), then open a new job with `consortium stats run SPEC.toml --config NODE.toml`")


def print_job(job: dict, console=None) -> None:
    from rich.table import Table

    if console is None:
        from node.console import stdout_console

        console = stdout_console()  # tables whole when piped
    console.print(f"job [bold]{job['id']}[/bold] ({job['kind']}, {job['name']}): [bold]{job['state']}[/bold], "
                  f"chain job {job['chain_job_id']}")
    if job["state"] == "FAILED":
        error = job["error"]
        console.print(f"[red]failed[/red]: {error['reason']}: {error['message']}")
        hint = rerun_hint(job)
        if hint:
            console.print(hint, highlight=False)
        return
    result = job.get("result")
    if not result:
        console.print(f"phase: {(job['progress'] or {}).get('phase')}")
        return
    table = Table(title=f"{job['kind']} result (k = {result.get('min_cohort', 1)}; result hash {job['result_hash'][:16]}... on chain)")
    for column in result["columns"]:
        table.add_column(column, justify="left" if column in ("bucket", "person") else "right")
    for row in result["rows"]:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    if result.get("min_cohort_raised"):
        console.print(f"k raised from {result.get('min_cohort_requested')} to {result['min_cohort']} by the data owners' floor")
    if result.get("suppressed"):
        console.print(f"suppressed (fewer than k distinct persons at some owner): {', '.join(result['suppressed'])}")
    if result.get("overflow_bucket"):
        console.print(f"{result['overflow_bucket']}: records outside the declared values, bins or value range (counted, not summed)")
    if result.get("epsilon"):
        console.print(f"differential privacy: epsilon {result['epsilon']}, noise added and charged by each data owner")
    if result.get("semantics"):
        for name, meaning in result["semantics"].items():
            console.print(f"  {name}: {meaning}")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    return str(value)


def _write_csv(client, job: dict, path: str | None) -> None:
    if path and job["state"] == "PUBLISHED":
        response = client.request("GET", f"/stats/jobs/{job['id']}/result.csv")
        if response.status_code == 200:
            Path(path).write_text(response.text)


def _cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec(Path(args.spec))
    client = own_node(args, timeout=60.0)
    job = call_node(client, "POST", "/stats/jobs", spec, what="job refused")
    if not args.no_wait:
        job = wait_for(client, job, show_progress=not args.json, timeout=args.timeout)
    _write_csv(client, job, args.csv)
    print(json.dumps(job)) if args.json else print_job(job)
    return 0 if job["state"] != "FAILED" else 2


def _cmd_show(args: argparse.Namespace) -> int:
    client = own_node(args, timeout=60.0)
    job = call_node(client, "GET", f"/stats/jobs/{args.job}", what="job")
    if args.wait:
        job = wait_for(client, job, show_progress=not args.json)
    _write_csv(client, job, args.csv)
    print(json.dumps(job)) if args.json else print_job(job)
    return 0


def _cmd_rerun(args: argparse.Namespace) -> int:
    client = own_node(args, timeout=60.0)
    job = call_node(client, "POST", f"/stats/jobs/{args.job}/rerun", what="re-run refused")
    if not args.no_wait:
        job = wait_for(client, job, show_progress=not args.json)
    print(json.dumps(job)) if args.json else print_job(job)
    return 0 if job["state"] != "FAILED" else 2


def _cmd_list(args: argparse.Namespace) -> int:
    client = own_node(args, timeout=60.0)
    jobs = call_node(client, "GET", "/stats/jobs", what="jobs")
    if args.json:
        print(json.dumps(jobs))
        return 0
    print_table("Statistics jobs requested by this node", ("id", "kind", "name", "state", "chain job", "reason"),
                [(job["id"], job["kind"], job["name"], job["state"], job["chain_job_id"], (job["error"] or {}).get("reason") or "")
                 for job in jobs])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    stats = sub.add_parser("stats", help="joint statistics with other members (horizontal, vertical, fraud signals)")
    commands = stats.add_subparsers(dest="stats_command", required=True)
    run = commands.add_parser("run", help="open a job from SPEC.toml on this node, wait for it, print the result")
    run.add_argument("spec", help="job spec (TOML, or JSON with a .json suffix)")
    run.add_argument("--no-wait", action="store_true", help="return once the job is accepted")
    run.add_argument("--timeout", type=float, help="give up waiting after this many seconds (the job goes on)")
    run.add_argument("--csv", help="also write the result table to this CSV file")
    run.set_defaults(func=_cmd_run)
    show = commands.add_parser("show", help="show a job and its result")
    show.add_argument("job")
    show.add_argument("--wait", action="store_true", help="wait until the job is published or failed")
    show.add_argument("--csv", help="also write the result table to this CSV file")
    show.set_defaults(func=_cmd_show)
    rerun = commands.add_parser("rerun", help="re-run a failed job without the participants that refused or missed it")
    rerun.add_argument("job")
    rerun.add_argument("--no-wait", action="store_true")
    rerun.set_defaults(func=_cmd_rerun)
    listing = commands.add_parser("list", help="jobs this node requested, newest first")
    listing.set_defaults(func=_cmd_list)
    for p in (run, show, rerun, listing):
        config_option(p, "this node's TOML settings file")
        json_option(p)
