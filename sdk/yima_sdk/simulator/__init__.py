"""The local simulated host: run a mini-app in the same yima_sdk worker runtime and bridge as production, in a
child process, against an in-memory platform with fixture residents and switches for the unhappy paths.

    from yima_sdk.simulator import Simulator

    with Simulator("my-app") as app:
        app.get("/hello", user="alice").json()
        app.switches.consent_denied = True
        app.scan("clinic", user="grandpa")
        app.advance(hours=2)                 # runs the jobs that fall due on the way

`AsyncSimulator` is the same from an event loop; `serve_http` serves it on 127.0.0.1 (`yima-sdk dev`).
The worker applies the production sandbox's OS layers where the machine allows (all of them on Linux as root;
Landlock, seccomp, rlimits, env and fds unprivileged; none off Linux); `missing_layers` names the rest.
"""

from yima_sdk._simworker import LAYERS
from yima_sdk.simulator._host import AppFailure, AsyncSimulator, JobRun, SimResponse
from yima_sdk.simulator._http import serve_http
from yima_sdk.simulator._platform import (
    FIXTURE_USERS,
    CallInfo,
    FixtureUser,
    SimJob,
    SimulatedPlatform,
    Switches,
)
from yima_sdk.simulator._sync import Simulator

__all__ = [
    "FIXTURE_USERS",
    "LAYERS",
    "AppFailure",
    "AsyncSimulator",
    "CallInfo",
    "FixtureUser",
    "JobRun",
    "SimJob",
    "SimResponse",
    "SimulatedPlatform",
    "Simulator",
    "Switches",
    "serve_http",
]
