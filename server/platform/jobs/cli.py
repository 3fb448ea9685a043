"""`yima jobs run APP JOB`: make a declared schedule's job due now, for an operator (or a developer on `yima dev`)
who will not wait for its hour. The running servers' job runners claim it within a poll (about a second) and
run it like any firing, with `scheduled_at` the moment of the command; after the run the schedule moves on to
its next firing as usual. Nothing runs in this process: the app's own code, in its sandbox, does the work. The
command is audited (`job.run_requested`, in the transaction that makes the job due), as `yima scan-outbox
replay` is."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from server import audit
from server.cli_support import Commands, add_common_options, audited_connection, cli_settings, database
from server.platform.jobs import repository as repo
from server.settings import Settings


async def _run_now(settings: Settings, app_id: str, name: str) -> int:
    async with audited_connection(settings) as conn, conn.transaction():
        job_id = await repo.make_due(conn, app_id, name, dt.datetime.now(dt.UTC))
        if job_id is not None:  # the app's code runs now, not at its hour: on record, with the change
            await audit.append(
                conn,
                actor="cli",
                action="job.run_requested",
                target=f"miniapp:{app_id}",
                details={"job": name, "job_id": f"job_{job_id}"},
            )
    if job_id is None:
        print(
            f"yima: {app_id} has no schedule {name!r} waiting to run (is the app released with it in its [jobs]"
            " and a server running? a run under way finishes first)",
            file=sys.stderr,
        )
        return 1
    print(f"{app_id}: {name} (job_{job_id}) is due now; a running server runs it within a few seconds")
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    with database(cli_settings(args)) as settings:
        return asyncio.run(_run_now(settings, args.app_id, args.job))


def add_commands(commands: Commands) -> None:
    jobs = commands.add_parser("jobs", help="the mini-apps' scheduled jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    run = jobs_sub.add_parser(
        "run",
        help="make a declared schedule's job due now (a running server runs it; then it keeps its hours)",
    )
    add_common_options(run)
    run.add_argument("app_id", help="the app, e.g. gov.guangde.medical")
    run.add_argument("job", help="a job name from the app's [jobs], e.g. remind")
    run.set_defaults(func=cmd_jobs_run)
