"""Several worker processes for one service, sharing its gRPC port.

Python runs one thread of Python code at a time, so a CPU-bound service uses one core per
process. With LEADFLOW_WORKERS=N, `leadflow serve` starts N copies of itself that bind the
same port with SO_REUSEPORT (the kernel spreads connections over them), forwards SIGTERM and
SIGINT to them, and stops them all, exiting non-zero, as soon as one dies on its own: a
supervisor (Kubernetes, `leadflow up`) then restarts the whole service. Each worker is a full
replica: its own pool, consumers and outbox relay, which the platform makes safe to run side
by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from leadflow_platform.embedded import die_with_parent
from leadflow_platform.settings import Settings

WORKER_ENV = "LEADFLOW_WORKER_INDEX"


def supervise_workers(settings: Settings) -> int:
    stopping = False

    def request_stop(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    workers: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for index in range(settings.workers):
        env = {**os.environ, WORKER_ENV: str(index)}
        workers.append(
            subprocess.Popen(
                # The command this process was started with (`leadflow serve ingest`,
                # `python -m leadflow_ingest`...), run again as a worker.
                sys.orig_argv,
                env=env,
                preexec_fn=die_with_parent,
            )
        )
    failed = False
    while any(w.poll() is None for w in workers):
        if not stopping and any(w.poll() is not None for w in workers):
            failed = True  # one died on its own: stop the others, let the supervisor restart
            request_stop(signal.SIGTERM, None)
        time.sleep(0.2)
    # A worker still starting when the stop came may die of the forwarded signal itself.
    clean = {0, -signal.SIGTERM, -signal.SIGINT} if stopping and not failed else {0}
    return 0 if all(w.returncode in clean for w in workers) else 1
