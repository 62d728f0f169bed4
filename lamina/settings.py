"""The one settings object: every knob of lamina, from a flag, a ``LAMINA_*`` variable or a default.

Each setting is declared once in ``SETTINGS``; the CLI builds its flags from that table and the
README's configuration table is checked against it by a test, so the three never drift apart.
A flag wins over the variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configurable value: its attribute name, type, default and help text."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    flag_only: bool = False

    @property
    def env_var(self) -> str:
        return "LAMINA_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address the API listens on."),
    Setting("port", 9000, "Port the API listens on (0 picks a free one).", int),
    Setting("data_dir", "./.lamina", "Where lamina keeps its database, code, logs and keys."),
    Setting("database_url", "",
            "SQLAlchemy URL of the metadata store (default: SQLite in the data dir)."),
    Setting("region", "us-east-1", "Region in ARNs and signatures."),
    Setting("account_id", "000000000000", "Account id in ARNs."),
    Setting("root_access_key_id", "", "Root access key id (generated on first start when unset)."),
    Setting("root_secret_access_key", "", "Root secret access key (generated with the key id)."),
    Setting("account_concurrency", 1000, "Account-wide concurrent executions limit.", int),
    Setting("min_unreserved_concurrency", 100,
            "Concurrency that reservations must leave unreserved.", int),
    Setting("idle_timeout", 300.0,
            "Seconds an idle environment is kept warm before shutdown.", float),
    Setting("max_starting", 64, "Environments that may be initialising at the same time.", int),
    Setting("spares", -1, "Processes forked and sandboxed ahead of demand, for bursts of cold "
            "starts (-1: 40 per core, at most what a fortieth of memory holds at ~2.5 MB each, "
            "2 to 256).", int),
    Setting("queue_wait_ms", 200,
            "How long a burst invoke may wait for a busy environment before a 429.", int),
    Setting("log_retention_days", 7, "Days function logs are kept.", int),
    Setting("log_max_bytes_per_function", 64 * 1024 * 1024, "Log bytes kept per function.", int),
    Setting("code_url_ttl", 600, "Seconds a GetFunction Code.Location URL stays valid.", int),
    Setting("log_level", "INFO", "Level of lamina's own log (DEBUG, INFO, WARNING, ERROR)."),
    Setting("insecure_no_sandbox", False,
            "Run functions without namespaces or cgroups (unsafe).", _bool),
    Setting("master_key_file", "",
            "File of the master keys that wrap environment-variable data keys (default: "
            "master.key in the data dir; created 0600)."),
    Setting("s3_endpoint", "",
            "S3-compatible endpoint for Code.S3Bucket/S3Key (unset: code from S3 is refused)."),
    Setting("s3_access_key_id", "", "Access key id for the S3 endpoint (unset: unsigned)."),
    Setting("s3_secret_access_key", "", "Secret access key for the S3 endpoint."),
    Setting("async_retry_base_seconds", 60.0,
            "Wait before retrying a failed async invocation (the second retry waits twice as "
            "long).", float),
    Setting("async_max_event_age_seconds", 21600,
            "Maximum event age of functions whose event invoke config sets none.", int),
    Setting("async_share", 0.8,
            "Share of a function's concurrency async events may hold at once (the rest stays "
            "free for synchronous invokes).", float),
    Setting("async_max_concurrency", 100,
            "Most async invocations of one function without reserved concurrency in flight at "
            "once.", int),
    Setting("async_poll_seconds", 1.0,
            "How often the async dispatcher looks for due events it was not told of (lapsed "
            "leases, other nodes).", float),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved configuration, passed explicitly to every part that needs it."""

    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path("./.lamina")
    database_url: str = ""
    region: str = "us-east-1"
    account_id: str = "000000000000"
    root_access_key_id: str = ""
    root_secret_access_key: str = ""
    account_concurrency: int = 1000
    min_unreserved_concurrency: int = 100
    idle_timeout: float = 300.0
    max_starting: int = 64
    spares: int = -1
    queue_wait_ms: int = 200
    log_retention_days: int = 7
    log_max_bytes_per_function: int = 64 * 1024 * 1024
    code_url_ttl: int = 600
    log_level: str = "INFO"
    insecure_no_sandbox: bool = False
    master_key_file: str = ""
    s3_endpoint: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    async_retry_base_seconds: float = 60.0
    async_max_event_age_seconds: int = 21600
    async_share: float = 0.8
    async_max_concurrency: int = 100
    async_poll_seconds: float = 1.0

    @property
    def resolved_master_key_file(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else \
            self.data_dir / "master.key"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'lamina.db'}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; unset flags stay ``None`` so the variable or default applies."""
    for setting in SETTINGS:
        if setting.parse is _bool:
            parser.add_argument(setting.flag, dest=setting.name, action="store_const", const=True,
                                default=None, help=f"{setting.help} [{setting.env_var}]")
        else:
            parser.add_argument(setting.flag, dest=setting.name, type=setting.parse, default=None,
                                help=f"{setting.help} [{setting.env_var}, "
                                     f"default {setting.default}]")


def load(flags: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: flag, then ``LAMINA_*`` variable, then default."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        flag_value = flags.get(setting.name)
        if flag_value is not None:
            value = flag_value
        elif setting.env_var in environ:
            try:
                value = setting.parse(environ[setting.env_var])
            except ValueError as exc:
                raise SystemExit(f"lamina: bad {setting.env_var}: {exc}") from exc
        else:
            value = setting.default
        values[setting.name] = value
    values["data_dir"] = Path(values["data_dir"])
    return Settings(**values)


def setting(name: str) -> Setting:
    return _BY_NAME[name]
