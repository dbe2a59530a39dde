"""A Flask service for gunicorn with the usual shutdown recipe for Kubernetes.

gunicorn runs the app in worker processes it manages, so a signal handler installed by the
app module is not the one that runs; the recipe installs it from gunicorn's
`post_worker_init` hook instead (gunicorn_config.py), and /health answers 503 once a worker
has received SIGTERM.

Bare, with the recipe:         gunicorn -c gunicorn_config.py main:app
Under lameduck serve (no hook): lameduck serve --port 8080 --upstream-health /health -- gunicorn main:app

(gunicorn binds to 0.0.0.0:$PORT when PORT is set; lameduck serve sets it for its child.)
`GET /?delay=MS` answers after MS milliseconds.
"""

import json
import os
import threading
import time

from flask import Flask, Response, request

app = Flask(__name__)
stop_event = threading.Event()


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@app.route("/health")
def health():
    if stop_event.is_set():
        return _json(503, {"pid": os.getpid(), "status": "unhealthy"})
    return _json(200, {"pid": os.getpid(), "status": "ok"})


@app.route("/")
def root():
    delay = int(request.args.get("delay", "0"))
    if delay > 0:
        time.sleep(delay / 1000)
    return _json(200, {"pod": os.environ.get("HOSTNAME", "flask"), "pid": os.getpid(), "delay": delay})
