"""``cincer-service serve``: the API on the embedded default (plugged into the core CLI).

Without ``CINCER_REDIS_URL``: SQLite under ``--data-dir``, background jobs on an in-process
``ThreadDispatcher``, the demo projects seeded on first start, served by Werkzeug's threaded
server until SIGINT/SIGTERM. With ``CINCER_REDIS_URL`` the same app sends jobs to Celery
workers (``cincer-service worker``); production runs it under gunicorn instead.
"""
from __future__ import annotations

import signal
import sys
import threading


def register(subparsers) -> None:
    """Add the ``serve`` command to the ``cincer-service`` parser."""
    parser = subparsers.add_parser(
        "serve", help="serve the labeling API (embedded default: SQLite + in-process worker)",
        description="Serve the REST API. Configuration comes from the CINCER_* environment "
                    "(CINCER_DATABASE_URL, CINCER_REDIS_URL, CINCER_ADMIN_TOKEN, ...); the "
                    "options below override it.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                                                            "127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--data-dir", default=None,
                        help="where the SQLite database lives (default $CINCER_DATA_DIR or "
                             "./cincer-data)")
    parser.add_argument("--no-demo", action="store_true",
                        help="do not seed the demo project (digits with 20%% label noise)")
    parser.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from cincer_service.device import describe_device, quiet_tensorflow

    quiet_tensorflow()                 # before anything below imports TensorFlow
    from werkzeug.serving import make_server

    from cincer_service.cli import UsageError
    from cincer_service.service import Settings, build_context, runner, seed_demo, workers

    from . import create_app, ensure_admin_token

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535 (got {args.port})")
    settings = Settings.from_env(data_dir=args.data_dir)
    dispatcher = None
    if settings.redis_url:
        app = create_app(settings)                # jobs go to the Celery workers
        service = app.extensions["cincer"]
    else:
        service = build_context(settings)
        dispatcher = runner.thread_dispatcher(service)
        service.set_dispatcher(dispatcher)
        app = create_app(settings, service)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    new_token = ensure_admin_token(service, settings.admin_token)
    if dispatcher is not None:
        dispatcher.start()
        workers.register_embedded_worker(service)
    demo = None if args.no_demo else seed_demo(service)

    url = f"http://{browsable_host(args.host)}:{server.server_port}"
    print(f"cincer-service {settings.mode} mode on {url}  (API {url}/api/v1, docs "
          f"{url}/api/v1/docs)", flush=True)
    if args.host != browsable_host(args.host):
        print(f"listening on {args.host} port {server.server_port}", flush=True)
    device = describe_device()["summary"]
    print(f"{device}; background jobs run in the Celery workers" if settings.redis_url
          else f"{device}; background jobs run in this process", flush=True)
    print(f"database: {_redact(settings.database)}", flush=True)
    if settings.admin_token:
        print("admin token: the value of CINCER_ADMIN_TOKEN", flush=True)
    elif new_token:
        print(f"admin token: {new_token}\n  (shown once; only its hash is stored)", flush=True)
    else:
        print("admin token: created on an earlier start; it is stored hashed and cannot be "
              "shown again. Set CINCER_ADMIN_TOKEN=<secret> to register a token you choose.",
              flush=True)
    if not args.no_demo:
        for line in demo_banner(service, url, seeded=demo is not None):
            print(line, flush=True)

    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever() to return: call it off this thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        if dispatcher is not None:
            dispatcher.stop()
        print("cincer-service stopped", file=sys.stderr, flush=True)
    return 0


def browsable_host(host: str) -> str:
    """The host part of a URL a browser on this machine can open for a server bound to
    ``host``: the loopback address for the wildcard addresses, IPv6 in brackets."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def demo_banner(service, url: str, seeded: bool) -> list[str]:
    """Console lines naming every demo project with its annotator and overview pages."""
    from sqlalchemy import select

    from cincer_service.service.store import Project

    with service.store.session() as s:
        demos = s.execute(select(Project.id, Project.name, Project.input_kind)
                          .where(Project.demo.is_(True)).order_by(Project.id)).all()
    if not demos:
        return []
    lines = ["demo projects" + (" seeded; screening runs in the background:" if seeded
                                else ":")]
    for pid, name, kind in demos:
        lines.append(f"  {pid} {name} ({kind}): annotate {url}/ui/?project={pid}  "
                     f"overview {url}/ui/overview?project={pid}")
    return lines


def _redact(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database url>"
