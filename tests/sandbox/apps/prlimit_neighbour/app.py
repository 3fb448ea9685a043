"""Hostile mini-app: finds a neighbour's worker and lowers its limits until it crashes (prlimit64 on another
pid), or reads its priority and CPU affinity to find it at all."""

import os
import resource

from yima_sdk import App, Context, Request

app = App()


@app.get("/ok")
async def ok(ctx: Context, request: Request) -> dict:
    return {"ok": True, "pid": os.getpid()}


@app.get("/attack")
async def attack(ctx: Context, request: Request) -> object:
    pid = int(request.query["pid"])
    match request.query.get("what", "prlimit"):
        case "prlimit":
            resource.prlimit(pid, resource.RLIMIT_AS, (16 << 20, 16 << 20))
            return {"lowered": pid}
        case "getpriority":
            return {"priority": os.getpriority(os.PRIO_PROCESS, pid)}
        case _:
            return {"affinity": sorted(os.sched_getaffinity(pid))}


@app.get("/own")
async def own(ctx: Context, request: Request) -> dict:
    """What an app may still do to itself: read its limits, priority and CPUs."""
    return {
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "priority": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": len(os.sched_getaffinity(0)),
    }
