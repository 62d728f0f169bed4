"""``lamina serve``: builds every part from the settings, serves, and shuts down cleanly.

Start-up order matters: the data dir and credentials first (so a key is stored before it is
printed), then the store (migrated), the sandbox launcher (refusing to start where the host
cannot isolate functions, unless told otherwise), the engine, and only then the listening
socket; ``/_lamina/health`` answers 200 once everything is ready. SIGTERM and SIGINT close in
the reverse order and leave no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from lamina.api import provisioning, snapstart_publish
from lamina.api.app import LaminaApp
from lamina.api.auth import SigV4Verifier
from lamina.api.catalog import Catalog
from lamina.api.code_urls import CodeUrls, load_key
from lamina.api.context import ApiContext
from lamina.api.iam import IamApi, IamServices
from lamina.api.lifecycle import settle_all
from lamina.api.naming import Naming
from lamina.api.operations.invoke import resolve_target
from lamina.api.serialize import serialize_error
from lamina.engine.context import EngineContext
from lamina.engine.runtimes import RUNTIMES_DIR
from lamina.engine.sandbox.api import Launcher
from lamina.engine.scheduler import Scheduler
from lamina.errors import RequestEntityTooLarge, RequestTooLarge, ServiceError
from lamina.http.server import HttpServer
from lamina.http.types import Request, Response
from lamina.identity.authorize import Authorizer
from lamina.identity.directory import Directory
from lamina.identity.root import RootCredentials, credentials_path, load_or_create
from lamina.identity.sessions import SessionRegistry
from lamina.invoke.api import Resolved
from lamina.invoke.dispatcher import Dispatcher, DispatcherSettings
from lamina.observe.logstore import LogStore
from lamina.secrets.datakeys import SqlDataKeyStore
from lamina.secrets.envelope import Envelope
from lamina.secrets.keyring import KeyRingError, MasterKeyRing
from lamina.secrets.sealed_store import SealedMetadataStore
from lamina.settings import Settings
from lamina.store.blobs import FileBlobStore
from lamina.store.events import SqlEventInvokeConfigs, SqlEventQueue
from lamina.store.iam import SqlIamStore
from lamina.store.registry import open_store
from lamina.store.sql import SqlMetadataStore

log = logging.getLogger("lamina")

MAX_REQUEST_BYTES = 70 * 1024 * 1024  # a 50 MB zip, base64-encoded, in a JSON body
SERVER_FILE = "server.json"


def make_launcher(settings: Settings, code_root: Path, layers_root: Path) -> Launcher:
    from lamina.engine.sandbox.launcher import NamespaceLauncher, UnsandboxedLauncher

    spares = None if settings.spares < 0 else settings.spares
    if settings.insecure_no_sandbox:
        return UnsandboxedLauncher(code_root=code_root, runtime_dir=RUNTIMES_DIR / "python",
                                   layers_root=layers_root, spares=spares)
    return NamespaceLauncher(code_root=code_root, runtime_dir=RUNTIMES_DIR / "python",
                             layers_root=layers_root, spares=spares)


def open_sealed_store(settings: Settings) -> tuple[SealedMetadataStore, SqlMetadataStore]:
    """The metadata store with environment variables sealed by the master key ring (created
    on first start), and the raw store the catalog's feature stores share."""
    raw = cast(SqlMetadataStore, open_store(settings.resolved_database_url))
    try:
        ring = MasterKeyRing.open(settings.resolved_master_key_file)
    except BaseException:
        raw.close()
        raise
    return SealedMetadataStore(raw, Envelope(ring, SqlDataKeyStore(raw))), raw


def _too_large(request: Request) -> Response:
    error: ServiceError
    if "/invocations" in request.path:
        error = RequestTooLarge(f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for "
                                "the InvokeFunction operation")
    else:
        error = RequestEntityTooLarge(
            f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the operation")
    return serialize_error(error)


def make_dispatcher(settings: Settings, context: ApiContext,
                    store: SqlMetadataStore) -> Dispatcher:
    """The async queue's dispatcher, on the metadata store's database (``store``: the raw one,
    under the sealing of environment variables), delivering through the same resolution
    (qualifiers, aliases, cache) and engine as synchronous invokes."""
    async def resolve(name: str, qualifier: str | None) -> Resolved:
        record, target = await resolve_target(context, name, qualifier)
        dead_letter = (record.config.get("DeadLetterConfig") or {}).get("TargetArn") or None
        return Resolved(target, record.created, dead_letter)

    return Dispatcher(
        SqlEventQueue(store), SqlEventInvokeConfigs(store), resolve, context.engine.invoke,
        store.reserved_concurrency,
        DispatcherSettings(retry_base_s=settings.async_retry_base_seconds,
                           default_max_age_s=settings.async_max_event_age_seconds,
                           poll_s=settings.async_poll_seconds,
                           share=min(1.0, max(0.01, settings.async_share)),
                           max_per_function=settings.async_max_concurrency,
                           account_limit=settings.account_concurrency))


async def renew_sessions(sessions: SessionRegistry, every_s: float = 600.0) -> None:
    """Keep live environments' credentials from lapsing under them (``renew_bound``)."""
    while True:
        await asyncio.sleep(every_s)
        sessions.renew_bound()


def banner(settings: Settings, endpoint: str, credentials: RootCredentials) -> str:
    lines = [
        f"lamina is serving the Lambda API at {endpoint}",
        f"  region {settings.region}, account {settings.account_id}, "
        f"data in {settings.data_dir.resolve()}",
        f"  access key id:     {credentials.access_key_id}",
    ]
    if credentials.generated:
        lines.append(f"  secret access key: {credentials.secret_access_key}")
        lines.append(f"  (generated now and printed once; kept in "
                     f"{credentials_path(settings.data_dir)} with mode 0600)")
    else:
        lines.append(f"  secret access key: in {credentials_path(settings.data_dir)} "
                     "or LAMINA_ROOT_SECRET_ACCESS_KEY")
    lines.append(f"  try: aws --endpoint-url {endpoint} lambda list-functions")
    return "\n".join(lines)


async def serve(settings: Settings,
                started: Callable[[LaminaApp], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or cancellation). ``started`` is called with the app once
    it is ready, for tools that drive the server in-process (``bench/hot_path.py``)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    credentials = load_or_create(data_dir, settings.root_access_key_id,
                                 settings.root_secret_access_key)
    code_root = data_dir / "code"
    code_root.mkdir(exist_ok=True)
    os.chmod(code_root, 0o711)  # the sandbox template binds trees from here; nothing lists it
    layers_root = data_dir / "layers"  # merged layer trees (/opt), bound the same way
    layers_root.mkdir(exist_ok=True)
    os.chmod(layers_root, 0o711)

    launcher = make_launcher(settings, code_root, layers_root)
    reason = launcher.unavailable_reason()
    if reason is not None:
        print(f"lamina: cannot sandbox functions on this host: {reason}\n"
              "lamina: refusing to start; pass --insecure-no-sandbox (LAMINA_INSECURE_NO_SANDBOX=1)"
              " to run functions without isolation.", file=sys.stderr)
        return 2

    try:
        store, raw_store = open_sealed_store(settings)
    except KeyRingError as exc:
        print(f"lamina: {exc}", file=sys.stderr)
        return 2
    blobs = FileBlobStore(data_dir / "blobs")
    logs = LogStore(data_dir / "logs", settings.log_retention_days,
                    settings.log_max_bytes_per_function)
    naming = Naming(settings.region, settings.account_id)
    sessions = SessionRegistry()
    directory = Directory(SqlIamStore(raw_store), settings.account_id, store.envelope)
    directory.bootstrap()  # AWS-managed policies and the default execution role
    authorizer = Authorizer(credentials.access_key_id, sessions, directory,
                            settings.account_id, settings.region)
    secrets = {credentials.access_key_id: credentials.secret_access_key}

    def lookup_secret(access_key_id: str) -> str | None:
        """Root, then sessions (an expired one too: the authorizer answers ExpiredToken),
        then IAM users' access keys."""
        secret = secrets.get(access_key_id)
        if secret is not None:
            return secret
        session = sessions.lookup(access_key_id)
        if session is not None:
            return session.secret_access_key
        return directory.secret(access_key_id)

    app_holder: list[LaminaApp] = []

    def handle(request: Request) -> object:
        return app_holder[0].handle(request)

    http = HttpServer(handle, max_body=MAX_REQUEST_BYTES, too_large=_too_large)  # type: ignore[arg-type]
    await launcher.start()
    try:
        host, port = await http.listen(settings.host, settings.port)
    except OSError as exc:
        await launcher.close()
        store.close()
        print(f"lamina: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    endpoint = f"http://{host}:{port}"
    engine_context = EngineContext(launcher, logs, sessions, settings.region,
                                   settings.account_id, endpoint,
                                   sandboxed=not settings.insecure_no_sandbox,
                                   directory=directory)
    scheduler = Scheduler(engine_context, account_limit=settings.account_concurrency,
                          max_starting=settings.max_starting,
                          queue_wait_ms=settings.queue_wait_ms,
                          idle_timeout=settings.idle_timeout)
    for name, value in store.reserved_concurrency().items():
        scheduler.set_reserved_concurrency(name, value)
    code_urls = CodeUrls(load_key(data_dir), blobs, settings.code_url_ttl)
    context = ApiContext(settings, naming, store, blobs, scheduler, logs, code_root,
                         code_url=code_urls.url, catalog=Catalog.on(raw_store),
                         layers_root=layers_root)
    dispatcher = make_dispatcher(settings, context, raw_store)
    context.async_events = dispatcher
    verifier = SigV4Verifier(lookup_secret, settings.region, services=("lambda", "iam", "sts"))
    iam = IamServices(directory.store, directory, authorizer, sessions, settings.account_id)
    context.identity = iam
    app = LaminaApp(context, verifier, code_urls, authorizer, iam=IamApi(iam, verifier))
    app_holder.append(app)
    logs.start()
    scheduler.start()
    await settle_all(context)
    await provisioning.sync_all(context)  # provisioned environments start initialising now
    context.spawn(snapstart_publish.restore_all(context))  # SnapStart snapshots: Init again
    await dispatcher.start()
    renewal = asyncio.get_running_loop().create_task(renew_sessions(sessions))

    (data_dir / SERVER_FILE).write_text(json.dumps({"endpoint": endpoint, "pid": os.getpid(),
                                                    "region": settings.region}))
    app.ready = True
    # Everything built so far lives as long as the server: take it out of the collector's
    # sight, or every full collection walks the service model and the ORM again (tens of ms,
    # landing on some unlucky invoke's latency).
    gc.collect()
    gc.freeze()
    print(banner(settings, endpoint, credentials), flush=True)
    if started is not None:
        started(app)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    print("lamina: shutting down", flush=True)
    app.ready = False
    await http.close()
    renewal.cancel()
    await dispatcher.stop()  # before the engine: deliveries in flight may finish meanwhile
    await scheduler.close()
    await launcher.close()
    for task in list(context.background):
        task.cancel()
    await logs.close()
    store.close()
    with contextlib.suppress(FileNotFoundError):
        (data_dir / SERVER_FILE).unlink()
    return 0


def raise_open_files_limit() -> int:
    """Every environment holds a few descriptors in the server (its Runtime API listener and
    connection, its output pipe): thousands of warm environments need the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run(settings: Settings) -> int:
    """Run the server on uvloop until SIGTERM/SIGINT; returns the process exit code."""
    import uvloop

    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    raise_open_files_limit()
    return uvloop.run(serve(settings))
