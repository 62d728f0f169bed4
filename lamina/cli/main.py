"""The ``lamina`` command: ``serve`` runs the server; the other commands are conveniences over
the same Lambda HTTP API that boto3 and the AWS CLI use.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import Any

import botocore.exceptions

from lamina import settings as settings_module
from lamina.cli import client

CLIENT_SETTINGS = ("data_dir", "host", "port", "region")


def _add_client_flags(parser: argparse.ArgumentParser) -> None:
    for name in CLIENT_SETTINGS:
        setting = settings_module.setting(name)
        parser.add_argument(setting.flag, dest=name, type=setting.parse, default=None,
                            help=f"{setting.help} [{setting.env_var}]")


def _settings(args: argparse.Namespace) -> settings_module.Settings:
    return settings_module.load({k: v for k, v in vars(args).items() if k in
                                 {s.name for s in settings_module.SETTINGS}})


def _parse_env(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"lamina: --env wants KEY=VALUE, got {pair!r}")
        variables[key] = value
    return variables


def _wait_ready(lam: Any, name: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") != "Pending" and config.get("LastUpdateStatus") != "InProgress":
            return config
        if time.monotonic() > deadline:
            raise SystemExit(f"lamina: {name} is still {config.get('State')} / "
                             f"{config.get('LastUpdateStatus')}")
        time.sleep(0.05)


# commands ---------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from lamina.server import run

    return run(_settings(args))


def cmd_deploy(args: argparse.Namespace) -> int:
    from lamina.store.archives import pack_directory

    source = Path(args.directory)
    if not source.is_dir():
        raise SystemExit(f"lamina: {source} is not a directory")
    package = pack_directory(source)
    settings = _settings(args)
    lam = client.lambda_client(settings)
    config: dict[str, Any] = {"Runtime": args.runtime, "Handler": args.handler}
    if args.memory is not None:
        config["MemorySize"] = args.memory
    if args.timeout is not None:
        config["Timeout"] = args.timeout
    if args.env:
        config["Environment"] = {"Variables": _parse_env(args.env)}
    role = args.role or f"arn:aws:iam::{settings.account_id}:role/lamina-function"
    try:
        lam.get_function_configuration(FunctionName=args.name)
        exists = True
    except lam.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        _wait_ready(lam, args.name)
        lam.update_function_code(FunctionName=args.name, ZipFile=package)
        _wait_ready(lam, args.name)
        lam.update_function_configuration(FunctionName=args.name, **config)
        action = "updated"
    else:
        lam.create_function(FunctionName=args.name, Role=role, Code={"ZipFile": package},
                            **config)
        action = "created"
    final = _wait_ready(lam, args.name)
    print(f"{action} {final['FunctionArn']} ({final['CodeSize']} bytes, "
          f"State {final.get('State')}, LastUpdateStatus {final.get('LastUpdateStatus')})")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    payload = args.payload or "{}"
    if payload.startswith("@"):
        payload = Path(payload[1:]).read_text()
    lam = client.lambda_client(_settings(args))
    kwargs: dict[str, Any] = {"FunctionName": args.function, "Payload": payload.encode()}
    if args.qualifier:
        kwargs["Qualifier"] = args.qualifier
    if args.log:
        kwargs["LogType"] = "Tail"
    if args.event:
        kwargs["InvocationType"] = "Event"
    response = lam.invoke(**kwargs)
    if args.log and response.get("LogResult"):
        sys.stderr.write(base64.b64decode(response["LogResult"]).decode("utf-8", "replace"))
    body = response["Payload"].read()
    if body:
        sys.stdout.write(body.decode("utf-8", "replace") + "\n")
    if response.get("FunctionError"):
        print(f"lamina: function error ({response['FunctionError']})", file=sys.stderr)
        return 1
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    lam = client.lambda_client(_settings(args))
    rows = []
    for page in lam.get_paginator("list_functions").paginate():
        for fn in page["Functions"]:
            rows.append((fn["FunctionName"], fn.get("Runtime", ""), str(fn.get("MemorySize", "")),
                         str(fn.get("Timeout", "")), fn.get("State", ""), fn["LastModified"]))
    header = ("NAME", "RUNTIME", "MEMORY", "TIMEOUT", "STATE", "LAST MODIFIED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    lam = client.lambda_client(_settings(args))
    for name in args.functions:
        lam.delete_function(FunctionName=name)
        print(f"deleted {name}")
    return 0


def _since_ms(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return int((time.time() - int(text[:-1]) * units[text[-1]]) * 1000)
    raise SystemExit(f"lamina: --since wants e.g. 30s, 10m, 2h or 1d, got {text!r}")


def cmd_logs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    start = _since_ms(args.since)
    seen: set[tuple[int, str, str]] = set()
    while True:
        document = client.signed_get(settings, f"/_lamina/logs/{args.function}?start={start}")
        for event in document["events"]:
            key = (event["timestamp"], event["logStreamName"], event["message"])
            if key in seen:
                continue
            seen.add(key)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
            print(f"{stamp} {event['logStreamName']} {event['message']}", flush=True)
            start = max(start, event["timestamp"])
        if not args.follow:
            return 0
        if len(seen) > 100_000:
            seen = {k for k in seen if k[0] >= start}
        time.sleep(0.5)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """A new master key; every data key re-wrapped under it; the old key dropped. Safe while
    a server runs on the same data dir (see ``lamina.secrets.rotate``)."""
    from lamina.secrets.datakeys import SqlDataKeyStore
    from lamina.secrets.keyring import KeyRingError, MasterKeyRing
    from lamina.secrets.rotate import rotate
    from lamina.store.registry import open_store

    settings = _settings(args)
    path = settings.resolved_master_key_file
    try:
        ring = MasterKeyRing.open(path, create=False)
    except KeyRingError as exc:
        raise SystemExit(f"lamina: {exc} (a server creates it on its first start)") from None
    store = open_store(settings.resolved_database_url)
    try:
        new_id, count = rotate(ring, SqlDataKeyStore(store))  # type: ignore[arg-type]
    finally:
        store.close()
    print(f"master key {new_id} is now active in {path}; {count} data keys re-wrapped under "
          "it; the previous master key is gone")
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from lamina.emulator import run_emulator

    return run_emulator(args)


# parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lamina",
        description="A self-hosted, AWS-Lambda-compatible function platform.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (the Lambda API on one port)",
                                description="Run lamina: the Lambda REST API, the execution "
                                "environments and the store, in one process.")
    settings_module.add_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    deploy = commands.add_parser("deploy", help="zip a directory and create or update a function",
                                 description="Zip DIRECTORY and create the function, or update "
                                 "its code and configuration when it exists.")
    deploy.add_argument("directory", help="the function's source directory")
    deploy.add_argument("--name", required=True, help="function name")
    deploy.add_argument("--runtime", default="python3.11",
                        help="python3.11, nodejs20.x, provided.al2023 or provided.al2")
    deploy.add_argument("--handler", default="app.handler", help="e.g. app.handler")
    deploy.add_argument("--memory", type=int, help="MemorySize in MB (128-10240)")
    deploy.add_argument("--timeout", type=int, help="Timeout in seconds (1-900)")
    deploy.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="an environment variable (repeatable)")
    deploy.add_argument("--role", help="execution role ARN")
    _add_client_flags(deploy)
    deploy.set_defaults(func=cmd_deploy)

    invoke = commands.add_parser("invoke", help="invoke a function and print its result",
                                 description="Invoke FUNCTION synchronously and print the "
                                 "result; a function error exits with status 1.")
    invoke.add_argument("function")
    invoke.add_argument("--payload", help="JSON text, or @file to read it from a file")
    invoke.add_argument("--qualifier", help="version or alias")
    invoke.add_argument("--log", action="store_true", help="print the log tail to stderr")
    invoke.add_argument("--event", action="store_true", help="invoke asynchronously (202)")
    _add_client_flags(invoke)
    invoke.set_defaults(func=cmd_invoke)

    ls = commands.add_parser("ls", help="list functions", description="List functions.")
    _add_client_flags(ls)
    ls.set_defaults(func=cmd_ls)

    rm = commands.add_parser("rm", help="delete functions", description="Delete functions.")
    rm.add_argument("functions", nargs="+")
    _add_client_flags(rm)
    rm.set_defaults(func=cmd_rm)

    logs = commands.add_parser("logs", help="print a function's logs",
                               description="Print the START/END/REPORT lines and output of "
                               "FUNCTION, like CloudWatch.")
    logs.add_argument("function")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    logs.add_argument("--since", default="1h", help="how far back to start (30s, 10m, 2h, 1d)")
    _add_client_flags(logs)
    logs.set_defaults(func=cmd_logs)

    keys = commands.add_parser("keys", help="manage the master key of environment variables",
                               description="Manage the master key that wraps the data keys of "
                               "encrypted environment variables.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = key_commands.add_parser(
        "rotate", help="replace the master key, re-wrapping every data key",
        description="Make a new master key, re-wrap every data key under it and drop the old "
        "one. A running server keeps working throughout.")
    for name in ("data_dir", "database_url", "master_key_file"):
        setting = settings_module.setting(name)
        rotate.add_argument(setting.flag, dest=name, type=setting.parse, default=None,
                            help=f"{setting.help} [{setting.env_var}]")
    rotate.set_defaults(func=cmd_keys_rotate)

    emulate = commands.add_parser(
        "emulate", help="serve one function like the AWS runtime interface emulator",
        description="A drop-in for aws-lambda-rie: serve POST /2015-03-31/functions/function/"
        "invocations for one function, given as --handler/--runtime/--code or as a runtime "
        "command after --.")
    emulate.add_argument("--port", type=int, default=8080, help="port to listen on")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulate.add_argument("--handler", help="handler, e.g. app.handler")
    emulate.add_argument("--runtime", default="python3.11", help="runtime of --handler")
    emulate.add_argument("--code", default=".", help="the function's code directory")
    emulate.add_argument("--timeout", type=int, default=300, help="invocation timeout, seconds")
    emulate.add_argument("--memory", type=int, default=3008, help="reported memory size, MB")
    emulate.add_argument("command", nargs=argparse.REMAINDER,
                         help="-- CMD ARGS...: the runtime to run instead of --handler")
    emulate.set_defaults(func=cmd_emulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"lamina: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 1
    except botocore.exceptions.EndpointConnectionError as exc:
        print(f"lamina: cannot reach the server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
