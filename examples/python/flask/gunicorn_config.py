"""gunicorn settings carrying the shutdown recipe: each worker, once started, handles SIGTERM
by marking the service unhealthy (main.stop_event), so /health answers 503.

The handler replaces gunicorn's own worker SIGTERM handler, so a worker no longer stops on
SIGTERM: gunicorn's master waits graceful_timeout (30 s by default) for it and then kills
it, whatever is in flight. Every pod takes that long to stop, and a
terminationGracePeriodSeconds below it ends in SIGKILL. Under `lameduck serve` this file is
not needed: lameduck answers readiness and drains, then gunicorn's default SIGTERM handling
(finish the current request, exit) takes well under a second.
"""

import logging
import signal


def handle_sigterm(signum, frame):
    from main import stop_event

    logging.warning("worker received SIGTERM: /health answers 503 from now on")
    stop_event.set()


def post_worker_init(worker):
    signal.signal(signal.SIGTERM, handle_sigterm)
    logging.info("SIGTERM handler installed in worker %s", worker.pid)
