"""The ``watchcache`` command line: ``serve`` (the HTTP service), ``demo`` (the embedded API) and
``version``.

Flags follow kube-apiserver's names where one exists. A bad flag or configuration ends the process
with exit code 2 and one line saying why; a clean shutdown (SIGTERM, SIGINT, SIGHUP) exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from typing import NoReturn

from .cache.settings import CacheSettings
from .config import load_config
from .demo import run_demo
from .errors import ConfigError
from .etcd.types import EtcdTLS
from .etcdserver.server import EtcdFrontSettings
from .http.connections import ConnectionSettings
from .http.settings import ServerSettings
from .logs import configure_logging
from .service import Service, ServiceOptions
from .version import VERSION

log = logging.getLogger("watchcache")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="watchcache",
        description="A shared, tenant-safe etcd watch cache for Kubernetes aggregated API servers.",
    )
    parser.add_argument("--version", action="version", version=f"watchcache {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    serve = commands.add_parser(
        "serve",
        help="serve the configured resources over HTTP(S)",
        description="Serve Kubernetes-style LIST/GET/WATCH and writes for the configured resources.",
    )
    etcd = serve.add_argument_group("etcd")
    etcd.add_argument(
        "--etcd-servers",
        default="",
        metavar="URLS",
        help="comma-separated etcd client URLs, e.g. http://127.0.0.1:2379 (several: IP addresses)",
    )
    etcd.add_argument(
        "--embedded-etcd",
        action="store_true",
        help="start a private etcd (the 'etcd' binary on PATH) in a temporary directory; it and its data "
        "go when watchcache ends, however it ends",
    )
    etcd.add_argument("--etcd-prefix", default="/registry", help="key prefix in etcd (default: /registry)")
    etcd.add_argument("--etcd-cafile", help="CA bundle (PEM) that verifies etcd's serving certificate")
    etcd.add_argument("--etcd-certfile", help="client certificate (PEM) presented to etcd")
    etcd.add_argument("--etcd-keyfile", help="private key (PEM) of --etcd-certfile")
    etcd.add_argument(
        "--etcd-request-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="deadline of each etcd request (default: 5)",
    )
    http = serve.add_argument_group("serving")
    http.add_argument(
        "--config", required=True, help="YAML file: the resources served (and tenants); see the README"
    )
    http.add_argument("--bind-address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    http.add_argument(
        "--port", type=int, default=8080, help="port to listen on; 0 picks a free one (default: 8080)"
    )
    http.add_argument(
        "--tls-cert-file", help="serving certificate (PEM); with it watchcache serves HTTPS, else plain HTTP"
    )
    http.add_argument("--tls-private-key-file", help="private key (PEM) of --tls-cert-file")
    http.add_argument(
        "--client-ca-file", help="CA bundle (PEM) that verifies client certificates (needs --tls-cert-file)"
    )
    http.add_argument(
        "--token-auth-file",
        help='kube-apiserver token CSV: token,user,uid,"groups"; the user is a tenant name from --config',
    )
    http.add_argument(
        "--max-request-body-bytes",
        type=int,
        default=3 * 1024 * 1024,
        metavar="BYTES",
        help="largest request body accepted; larger ones get 413 (default: 3 MiB)",
    )
    http.add_argument(
        "--min-request-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="a watch without timeoutSeconds ends at a random time between this and twice this "
        "(default: 1800)",
    )
    http.add_argument(
        "--write-timeout",
        "--watch-write-timeout",
        dest="write_timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="drop a connection whose client has not read a response (a watch, a LIST, an object) "
        "for this long (default: 60)",
    )
    http.add_argument(
        "--request-header-timeout",
        type=float,
        default=ConnectionSettings.header_timeout,
        metavar="SECONDS",
        help="close a connection that has not completed its TLS handshake and sent a whole request "
        f"header within this long (default: {ConnectionSettings.header_timeout:g})",
    )
    http.add_argument(
        "--idle-timeout",
        type=float,
        default=ConnectionSettings.idle_timeout,
        metavar="SECONDS",
        help="close a kept-alive connection idle for this long between requests "
        f"(default: {ConnectionSettings.idle_timeout:g})",
    )
    http.add_argument(
        "--max-unauthenticated-connections",
        type=int,
        default=ConnectionSettings.max_unauthenticated,
        metavar="N",
        help="connections without an authenticated request yet; past it the oldest is closed "
        f"(default: {ConnectionSettings.max_unauthenticated})",
    )
    front = serve.add_argument_group("etcd v3 API")
    front.add_argument(
        "--etcd-listen-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve the etcd v3 gRPC API on this port (0: any free one), with the same bind address "
        "and TLS, so that an aggregated API server can use watchcache as its etcd",
    )
    front.add_argument(
        "--etcd-progress-notify-interval",
        type=float,
        default=EtcdFrontSettings.progress_interval,
        metavar="SECONDS",
        help="seconds between progress notifications to an idle etcd watch that asked for them "
        f"(default: {EtcdFrontSettings.progress_interval:g})",
    )
    cache = serve.add_argument_group("cache")
    cache.add_argument(
        "--default-watch-cache-size",
        type=int,
        default=CacheSettings.window_events,
        metavar="EVENTS",
        help="recent changes kept per resource for watches from the past "
        f"(default: {CacheSettings.window_events})",
    )
    cache.add_argument(
        "--watcher-buffer",
        type=int,
        default=CacheSettings.watcher_buffer,
        metavar="EVENTS",
        help="changes queued per watcher before it is ended as too slow "
        f"(default: {CacheSettings.watcher_buffer})",
    )
    cache.add_argument(
        "--watch-bookmark-interval",
        type=float,
        default=CacheSettings.bookmark_interval,
        metavar="SECONDS",
        help="seconds between bookmarks to an idle watch that allows them "
        f"(default: {CacheSettings.bookmark_interval:g})",
    )
    logs = serve.add_argument_group("logging")
    logs.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log line format (default: text)"
    )
    logs.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log level; debug logs one line per request (default: info)",
    )

    demo = commands.add_parser("demo", help="exercise the embedded Python API and print what a watcher sees")
    demo.add_argument(
        "--etcd-servers",
        default="",
        help="comma-separated etcd URLs; without it a private etcd is started (needs 'etcd' on PATH)",
    )
    demo.add_argument("--etcd-prefix", default="/registry", help="key prefix in etcd (default /registry)")
    commands.add_parser("version", help="print watchcache's version")
    return parser


def _options(args: argparse.Namespace) -> ServiceOptions:
    servers = tuple(s.strip() for s in args.etcd_servers.split(",") if s.strip())
    if bool(servers) == bool(args.embedded_etcd):
        raise ConfigError("give exactly one of --etcd-servers and --embedded-etcd")
    for flag, port in (("--port", args.port), ("--etcd-listen-port", args.etcd_listen_port)):
        if port is not None and not 0 <= port <= 65535:
            raise ConfigError(f"{flag} {port} is not a port number")
    for flag in (
        "max_request_body_bytes",
        "default_watch_cache_size",
        "watcher_buffer",
        "write_timeout",
        "request_header_timeout",
        "idle_timeout",
        "max_unauthenticated_connections",
    ):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be positive")
    if not args.watch_bookmark_interval > 0:
        raise ConfigError("--watch-bookmark-interval must be positive")
    tls = None
    if args.etcd_cafile or args.etcd_certfile or args.etcd_keyfile:
        if bool(args.etcd_certfile) != bool(args.etcd_keyfile):
            raise ConfigError("--etcd-certfile and --etcd-keyfile go together")
        tls = EtcdTLS(cafile=args.etcd_cafile, certfile=args.etcd_certfile, keyfile=args.etcd_keyfile)
    return ServiceOptions(
        config=load_config(args.config),
        etcd_servers=servers,
        embedded_etcd=args.embedded_etcd,
        etcd_prefix=args.etcd_prefix,
        etcd_tls=tls,
        bind_address=args.bind_address,
        port=args.port,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        token_auth_file=args.token_auth_file,
        server=ServerSettings(
            max_body_bytes=args.max_request_body_bytes,
            min_request_timeout=args.min_request_timeout,
            write_timeout=args.write_timeout,
            connections=ConnectionSettings(
                header_timeout=args.request_header_timeout,
                idle_timeout=args.idle_timeout,
                max_unauthenticated=args.max_unauthenticated_connections,
            ),
        ),
        cache=CacheSettings(
            window_events=args.default_watch_cache_size,
            watcher_buffer=args.watcher_buffer,
            bookmark_interval=args.watch_bookmark_interval,
        ),
        request_timeout=args.etcd_request_timeout,
        etcd_listen_port=args.etcd_listen_port,
        etcd_front=EtcdFrontSettings(
            progress_interval=args.etcd_progress_notify_interval, write_timeout=args.write_timeout
        ),
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the ``speed`` extra): the service's hot paths are
    socket writes and task switches, which it makes several times cheaper."""
    try:
        import uvloop  # noqa: PLC0415 - optional: present with the "speed" extra
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _raise_open_files_limit() -> None:
    """Let the process use every file descriptor the system allows it (the soft limit raised to the
    hard one, as Go programs do): each client connection is one, and the caps on connections
    (see ``_connections``) are what keeps any one client from taking them all."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError) as err:
        log.debug("could not raise the open files limit: %s", err)


# A listener on every interface is not reached at its own address: suggest one that is.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _reachable(url: str) -> tuple[str, str | None]:
    """``url`` as a client on this machine reaches it, and as other machines may (by host name) when
    it listens on every interface (else ``None``)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host not in _LOOPBACK:
        return url, None
    loopback = _LOOPBACK[host]
    shown = f"[{loopback}]" if ":" in loopback else loopback
    return (
        parts._replace(netloc=f"{shown}:{parts.port}").geturl(),
        parts._replace(netloc=f"{socket.gethostname()}:{parts.port}").geturl(),
    )


def _hints(service: Service) -> str:
    options = service.options
    config = options.config
    server, remote = _reachable(service.url)
    etcd_endpoint = _reachable(f"//{service.etcd_endpoint}")[0].removeprefix("//")
    lines = [f"watchcache: serving {service.url}"]
    if remote is not None:
        lines[0] += f" (every interface): {server} from this machine, {remote} from others"
    if service.etcd_endpoint:
        lines.append(f"watchcache: serving the etcd v3 API at {service.etcd_endpoint}")
        if etcd_endpoint != service.etcd_endpoint:
            lines[-1] += f" (every interface): {etcd_endpoint} from this machine"
    if service.etcd is not None:
        lines.append(
            f"watchcache: private etcd at {service.etcd.endpoints[0]}, data in {service.etcd.root} "
            "(removed on exit)"
        )
    if config.tenants is None:
        lines.append("watchcache: no tenants configured: authentication is OFF (loopback development only)")
    first = config.resources[0]
    flags = f"--server {server}" + (" --insecure-skip-tls-verify" if server.startswith("https") else "")
    ns = " -n default" if first.namespaced else ""
    lines += [
        "Try:",
        f"  kubectl {flags} api-resources",
        f"  kubectl {flags} get {first.resource}{ns} -w &",
        f"  curl -s {server}/apis/{first.group}/{first.versions[0]}/{first.resource}",
        *(
            [f"  etcdctl --endpoints {etcd_endpoint} get --prefix {options.etcd_prefix}/{first.group}/"]
            if service.etcd_endpoint and config.tenants is None
            else []
        ),
        "Stop with Ctrl-C, SIGTERM or by closing the terminal (SIGHUP): open watches end cleanly"
        + (", the private etcd and its data are removed." if service.etcd is not None else "."),
    ]
    return "\n".join(lines)


# Each ends the service the same way: the listener closes, open watches end, etcd is stopped. SIGHUP
# is what closing the terminal sends.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def _serve(options: ServiceOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    service = Service(options)
    try:
        await service.start()
        print(_hints(service), flush=True)
        await stop.wait()
        log.info("shutting down: ending open watches")
    finally:
        await service.stop()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"watchcache {VERSION}")
        return 0
    if args.command == "serve":
        configure_logging(log_format=args.log_format, level=args.log_level)
        try:
            options = _options(args)
            _raise_open_files_limit()
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                return runner.run(_serve(options))
        except (ConfigError, ValueError, OSError) as err:
            print(f"watchcache serve: {err}".splitlines()[0], file=sys.stderr)
            return 2 if isinstance(err, ConfigError | ValueError) else 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        servers = [s for s in args.etcd_servers.split(",") if s]
        try:
            asyncio.run(run_demo(servers, args.etcd_prefix))
        except Exception as err:  # one line for the user, not a traceback
            print(f"watchcache demo: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
