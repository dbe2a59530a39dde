"""A FastAPI service with the usual shutdown recipe for Kubernetes.

The recipe: install a SIGTERM (and SIGINT) handler that marks the service as stopping, and
let /health answer 503 from then on, so the readiness probe fails and traffic moves away.

Under uvicorn the handler never runs: uvicorn installs its own SIGTERM and SIGINT handlers
when it starts, which replace this module's. On SIGTERM uvicorn closes its listener at once,
so /health is refused rather than answering 503, and idle keep-alive connections are closed
under the clients' feet. Run it bare, then under `lameduck serve`, in `lameduck rollout`:

    uvicorn --app-dir examples/python/fastapi main:app --port 8081
    lameduck serve --port 8080 --upstream-health /health -- \
        sh -c 'exec uvicorn --app-dir examples/python/fastapi main:app --port "$PORT"'

`GET /?delay=MS` answers after MS milliseconds.
"""

import asyncio
import logging
import os
import signal
import threading
from functools import partial

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()
stop_event = threading.Event()


def on_termination_signal(signum, frame, app: FastAPI) -> None:
    if signum in (signal.SIGTERM, signal.SIGINT):
        logging.warning("%s received: /health answers 503 from now on", signal.Signals(signum).name)
        stop_event.set()
    else:
        logging.warning("unexpected signal %s", signum)


# Replaced by uvicorn's own handlers as soon as the server starts (see above).
signal.signal(signal.SIGTERM, partial(on_termination_signal, app=app))
signal.signal(signal.SIGINT, partial(on_termination_signal, app=app))


@app.get("/health")
async def health():
    if stop_event.is_set():
        return PlainTextResponse("stopping", status_code=503)
    return "ok"


@app.get("/")
async def root(delay: int = 0):
    if delay > 0:
        await asyncio.sleep(delay / 1000)
    return {"pod": os.environ.get("HOSTNAME", "fastapi"), "delay": delay}
