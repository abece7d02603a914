"""Replicated serving: ``decisionlab serve --backend ray --replicas N [--address ADDR]``.

The API that ``decisionlab serve`` runs on uvicorn, deployed on Ray Serve with the FastAPI ingress
pattern: one deployment whose ingress is the app :func:`decisionlab.apps.api.create_app` builds, in
``N`` replicas behind Serve's HTTP proxy. Each replica builds its own app when it starts (an app
holds threads, caches and a registry connection, none of which survive pickling), and Serve runs
the app's lifespan in it: the warm-up and the registry watcher, as under uvicorn.

A replica does not inherit the driver's environment on a cluster, so the decisionlab settings of
the driver (``core.ray_backend.forwarded_env`` and every other ``DECISIONLAB_*`` variable the API
reads: the token, the body limit, the warm-up scope...) travel in the deployment's runtime
environment. The replicas of one machine share a prometheus-client multiprocess directory, as
``--workers`` do, so ``/metrics`` adds them up (on a cluster: the replicas of the node that
answered). Request logs are decisionlab's JSON lines, on each replica's stderr (Ray's worker logs).

Nothing here imports Ray, the API or its metrics at module level: without Ray installed the error
comes from :func:`decisionlab.core.ray_backend.import_ray`, and a replica must set its metrics
directory before the API's metrics exist.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from decisionlab.core.errors import DecisionlabError
from decisionlab.core.ray_backend import connect, forwarded_env

APP_NAME = "decisionlab"  # the Serve application
DEPLOYMENT_NAME = "decisionlab_api"
ENV_PREFIX = "DECISIONLAB_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # = core.telemetry.MULTIPROC_ENV (not imported: see above)
REQUEST_ID_HEADER = b"x-request-id"
KEEP_ALIVE_S = 30  # as uvicorn's timeout_keep_alive in apps.server
log = logging.getLogger("decisionlab.ray_serve")


def serving_env() -> dict[str, str]:
    """What every replica's environment holds of the driver's: every ``DECISIONLAB_*`` variable that
    is set (the data dir, database, device, token, body limit, warm-up...)."""
    env = {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX) and value}
    env.update(forwarded_env())
    return env


def replica_log_config(level: str) -> dict[str, Any]:
    """``logging.config`` dict of a replica: decisionlab's JSON lines on stderr (Serve logs its own)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "decisionlab.apps.server.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {"decisionlab": {"handlers": ["stderr"], "level": level.upper(), "propagate": False}},
    }


def prepare_replica(env: dict[str, str], log_level: str) -> None:
    """Make a replica's process see exactly the driver's decisionlab settings (a worker started by a
    raylet keeps the raylet's environment, which may hold other ``DECISIONLAB_*`` values), make its
    metrics directory and set up its logs. Runs before the app is built."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX) and name not in env]:
        del os.environ[name]
    os.environ.update(env)
    if os.environ.get(MULTIPROC_ENV):
        os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)  # on another node it does not exist yet
    logging.config.dictConfig(replica_log_config(log_level))


class EchoedRequestId:
    """Serve's proxy passes its request id to the app in ``X-Request-ID`` (the client's, else a new one),
    which the app adopts, and puts it on the response itself: drop the app's copy of the same value, or
    the header would say it twice. (A client id the app refuses as insane still shows both.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        given = next((value for key, value in scope.get("headers", []) if key.lower() == REQUEST_ID_HEADER), None)
        if scope["type"] != "http" or given is None:
            await self.app(scope, receive, send)
            return

        async def send_once(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [(key, value) for key, value in message.get("headers", [])
                                      if not (key.lower() == REQUEST_ID_HEADER and value == given)]
            await send(message)

        await self.app(scope, receive, send_once)


def build_app() -> Any:
    """The replica's ASGI app: the same one uvicorn serves (imported here, after :func:`prepare_replica`)."""
    from decisionlab.apps.api import create_app

    app = create_app()
    app.add_middleware(EchoedRequestId)  # the outermost: it sees the request id header the app added
    return app


@dataclass
class RayServing:
    """A running deployment: where it answers, and how to take it down."""

    url: str
    replicas: int
    metrics_dir: str | None = None
    stopped: bool = field(default=False, init=False)

    def stop(self) -> None:
        """Delete the application; shut Serve down too when nothing else runs on it."""
        if self.stopped:
            return
        self.stopped = True
        from ray import serve

        try:
            serve.delete(APP_NAME)
            if not serve.status().applications:
                serve.shutdown()
        finally:
            if self.metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)


def deployment(serve: Any, replicas: int, num_cpus: float, env: dict[str, str], log_level: str) -> Any:
    """The Serve deployment: ``replicas`` copies of the API, each with ``num_cpus`` and ``env``."""

    # The builder form of @serve.ingress: the app is made in each replica, after __init__.
    @serve.ingress(build_app)
    class DecisionlabAPI:
        def __init__(self, env: dict[str, str], log_level: str) -> None:
            prepare_replica(env, log_level)

    return serve.deployment(
        DecisionlabAPI,
        name=DEPLOYMENT_NAME,
        num_replicas=replicas,
        # env_vars are in the process from its start: prometheus-client picks its multiprocess mode
        # when it is first imported, which may be before __init__.
        ray_actor_options={"num_cpus": num_cpus, "runtime_env": {"env_vars": env}},
        logging_config={"encoding": "JSON", "log_level": log_level.upper(), "enable_access_log": False},
    ).bind(env, log_level)


def check_port_free(host: str, port: int) -> None:
    """A busy port is a one-line error here rather than a proxy that never starts."""
    from decisionlab.apps.server import tcp_socket

    tcp_socket(host, port).close()


def check_http_options(host: str, port: int) -> None:
    """Serve runs one proxy configuration per cluster (a second one is ignored with a log line): refuse
    to deploy where Serve already listens elsewhere."""
    try:  # a private attribute: without it, the check is skipped
        from ray.serve.context import _get_global_client

        config = _get_global_client().http_config
        running = (str(config.host), int(config.port))
    except Exception:  # noqa: BLE001 - best effort
        return
    if running != (host, port):
        raise DecisionlabError(f"Ray Serve already runs on this cluster on {running[0]}:{running[1]}: serve there "
                               f"(--host {running[0]} --port {running[1]}) or shut it down first (serve shutdown)")


def check_settings() -> None:
    """The settings every replica would refuse at start-up (the warm-up scope, the body limit), refused
    here in one line, before any replica starts (and fails 6 times, Serve's limit)."""
    from decisionlab.apps.api import max_body_bytes, warm_scope

    warm_scope()
    max_body_bytes()


def replica_error(serve: Any) -> str:
    """Why the replicas failed to start: the last line of the error one raised (from Serve's status; the
    exception ``serve.run`` raises only says that the deployment failed)."""
    try:
        message = serve.status().applications[APP_NAME].deployments[DEPLOYMENT_NAME].message
    except Exception:  # noqa: BLE001 - the status is gone or has another shape: no reason to give
        return ""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return re.sub(r"^[\w.]+\.(\w+): ", r"\1: ", lines[-1]) if lines else ""  # DecisionlabError: ..., unqualified


def deploy(host: str = "127.0.0.1", port: int = 8000, replicas: int = 2, address: str | None = None,
           log_level: str = "info", num_cpus: float = 1.0, blocking: bool = True) -> RayServing:
    """Deploy the API on Ray Serve (connecting to ``address``, else the running or a new local Ray) with
    ``replicas`` replicas of ``num_cpus`` CPUs each, answering on ``host:port``. ``blocking``: serve until
    interrupted, then take the deployment down; else return the running :class:`RayServing`."""
    if replicas < 1:
        raise DecisionlabError(f"--replicas must be at least 1, got {replicas}")
    check_settings()
    ray = connect(address)
    from ray import serve

    if serve.status().proxies:
        check_http_options(host, port)
    elif address is None:
        check_port_free(host, port)  # the proxy will run on this machine
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if replicas * num_cpus > cpus:
        log.warning("%d replicas of %g CPUs need %g CPUs, the cluster has %g: some wait for resources",
                    replicas, num_cpus, replicas * num_cpus, cpus)
    env = serving_env()
    # One directory per deployment: a later one must not add up the samples of an earlier one.
    metrics_dir = env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="decisionlab-metrics-")
    serve.start(http_options={"host": host, "port": port, "keep_alive_timeout_s": KEEP_ALIVE_S})
    serving = RayServing(url=f"http://{host}:{port}", replicas=replicas, metrics_dir=metrics_dir)
    try:
        serve.run(deployment(serve, replicas, num_cpus, env, log_level), name=APP_NAME, route_prefix="/")
    except Exception as err:
        reason = replica_error(serve) or str(err)
        serving.stop()
        raise DecisionlabError(f"Ray Serve could not start the API: {reason}") from err
    if not blocking:
        return serving
    log.info("serving on %s with %d replicas (Ray Serve)", serving.url, replicas)
    # SIGTERM (a process manager's stop) ends it as Ctrl-C does: the application is deleted and a Ray
    # this process started is shut down on exit, instead of outliving it.
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        serving.stop()
    log.info("stopped serving on %s", serving.url)
    return serving


def serve(host: str = "127.0.0.1", port: int = 8000, replicas: int = 2, address: str | None = None,
          log_level: str = "info", num_cpus: float = 1.0) -> None:
    """``decisionlab serve --backend ray``: JSON logs on stderr, then :func:`deploy` until interrupted."""
    from decisionlab.apps.server import log_config

    logging.config.dictConfig(log_config(log_level))
    deploy(host, port, replicas, address, log_level, num_cpus, blocking=True)
