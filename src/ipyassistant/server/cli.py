"""``ipyassistant serve``: the Assistants API server as a standalone process."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import socket
import sys

__all__ = ["add_serve_parser", "serve"]

log = logging.getLogger("ipyassistant.server")


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ.get
    parser = commands.add_parser(
        "serve",
        help="run the Assistants API server",
        description="Run the OpenAI Assistants API v2 server (clients use base_url=http://HOST:PORT/v1).",
    )
    parser.add_argument(
        "--host",
        default=env("IPYASSISTANT_HOST", "127.0.0.1"),
        help="address to bind (IPYASSISTANT_HOST; default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("IPYASSISTANT_PORT", "8000")),
        help="port (IPYASSISTANT_PORT; default 8000)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data directory for the database and files (IPYASSISTANT_DATA_DIR)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy async URL, e.g. postgresql+asyncpg://… (IPYASSISTANT_DATABASE_URL; default SQLite in the data directory)",
    )
    parser.add_argument(
        "--database-pool-size",
        type=int,
        default=None,
        help="connections each process keeps to PostgreSQL, at most "
        "(IPYASSISTANT_DATABASE_POOL_SIZE; default 20)",
    )
    parser.add_argument(
        "--no-migrate",
        dest="migrate",
        action="store_false",
        help="do not upgrade the database's schema at start: refuse to start if it is not the "
        "newest (then run 'ipyassistant db upgrade')",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="the Bearer key clients must send (IPYASSISTANT_API_KEY); required unless bound to loopback, where a random one is made",
    )
    parser.add_argument(
        "--code-sandbox",
        choices=["auto", "bwrap", "none"],
        default=env("IPYASSISTANT_CODE_SANDBOX") or "auto",
        help="confine the code interpreter's kernels with bubblewrap, or not "
        "(IPYASSISTANT_CODE_SANDBOX; default auto: bwrap when it works here)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env("IPYASSISTANT_WORKERS", "1")),
        help="server processes sharing the port and the database (IPYASSISTANT_WORKERS; "
        "default 1); more processes may also run elsewhere on the same database",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(handler=serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def _code_sandbox(asked: str) -> str | None:
    """The sandbox the code interpreter uses; None (after saying why) when ``bwrap`` cannot run."""
    from .sandbox import bwrap_problem, unavailable

    if os.environ.get("IPYASSISTANT_KERNEL_GATEWAY_URL"):
        return "none"  # kernels run on the gateway: a local sandbox has nothing to confine
    problem = bwrap_problem() if asked in ("auto", "bwrap") else None
    if asked == "auto":
        if problem is None:
            return "bwrap"
        print(
            f"warning: the code interpreter runs unconfined ({problem}); install bubblewrap "
            "to confine it, or set IPYASSISTANT_CODE_SANDBOX=none to silence this.",
            file=sys.stderr,
            flush=True,
        )
        return "none"
    if asked not in ("bwrap", "none"):
        print(f"error: the code sandbox must be auto, bwrap or none, not {asked!r}", file=sys.stderr)
        return None
    if problem is not None:
        print(f"error: {unavailable(problem)}", file=sys.stderr)
        return None
    return asked


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .cli_db import schema_problem
    from .cli_keys import database_has_keys
    from .config import ServerConfig
    from .embedded import DrainingServer

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    sandbox = _code_sandbox(args.code_sandbox)
    if sandbox is None:
        return 2
    config = ServerConfig.from_env(
        data_dir=args.data_dir,
        database_url=args.database_url,
        database_pool_size=args.database_pool_size,
        api_key=args.api_key,
        code_sandbox=sandbox,
        migrate=args.migrate,
    )
    if config.database_pool_size < 2:
        print(
            "error: --database-pool-size (IPYASSISTANT_DATABASE_POOL_SIZE) must be at least 2: "
            "one connection listens for cancels, the others do the work",
            file=sys.stderr,
        )
        return 2
    if not config.migrate and (problem := schema_problem(config.resolved_database_url)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Without --api-key, people's keys in the database (``ipyassistant keys``) let them in;
    # with neither, only a loopback server may start, with a random key of its own.
    if not config.api_key and not database_has_keys(args.data_dir, args.database_url):
        if not _is_loopback(args.host):
            print(
                f"error: refusing to serve on {args.host} without an API key; "
                "pass --api-key KEY or set IPYASSISTANT_API_KEY, or make keys with "
                "'ipyassistant keys create NAME [--admin]'.",
                file=sys.stderr,
            )
            return 2
        config = ServerConfig.from_env(
            data_dir=args.data_dir,
            database_url=args.database_url,
            database_pool_size=args.database_pool_size,
            api_key=secrets.token_urlsafe(24),
            code_sandbox=sandbox,
            migrate=args.migrate,
        )
        print(
            f"No API key given; clients must send this one: {config.api_key}",
            file=sys.stderr,
            flush=True,
        )
    processes = f"; {args.workers} worker processes" if args.workers > 1 else ""
    print(
        f"Assistants API at http://{args.host}:{args.port}/v1 (data: {config.data_dir}; "
        + (
            f"kernels on the gateway at {config.kernel_gateway_url}"
            if config.kernel_gateway_url
            else f"code sandbox: {config.code_sandbox}"
        )
        + f"{processes})",
        file=sys.stderr,
        flush=True,
    )
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.workers > 1:
        from .workers import supervise

        return supervise(config, args.host, args.port, args.log_level, args.workers)
    app = create_app(config)
    server = DrainingServer(
        uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False),
        app.state.server,
    )
    server.run()
    return 0
