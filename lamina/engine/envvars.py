"""The environment variables of an execution environment, as Lambda sets them.

Platform variables win over the user's; the ones Lambda reserves may not be set by users at all
(refused at create/update, with Lambda's message). Defaults such as ``PATH`` or ``TZ`` may be
overridden, as on AWS.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidParameterValue

RESERVED = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})

MAX_ENVIRONMENT_BYTES = 4096
OPT = "/opt"  # where an environment sees its layers
PYTHON_DIR = "python3.11"  # the one Python runtime lamina has


def check_user_variables(variables: Mapping[str, str]) -> None:
    """Refuse reserved names and a total over Lambda's 4 KB, with Lambda's wording."""
    reserved = sorted(name for name in variables if name in RESERVED)
    if reserved:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            f"variables you have provided exceeded the 4KB limit. String measured: {size}")


def build_environment(
    *,
    user: Mapping[str, str],
    runtime_family: str,
    execution_env: str | None,
    handler: str,
    function_name: str,
    version: str,
    memory_mb: int,
    region: str,
    log_group: str,
    log_stream: str,
    runtime_api: str,
    task_root: str,
    runtime_dir: str,
    credentials: tuple[str, str, str],
    endpoint_url: str,
    initialization_type: str = "on-demand",
    log_format: str | None = None,
    log_level: str | None = None,
    opt: str = OPT,
) -> dict[str, str]:
    environ = {
        "PATH": f"/usr/local/bin:/usr/bin:/bin:{opt}/bin",
        "LD_LIBRARY_PATH": f"/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{task_root}:"
                           f"{task_root}/lib:{opt}/lib",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }
    if runtime_family == "python":
        # Layers' Python packages, as on AWS (the forked interpreter gets the same directories
        # on sys.path from the sandbox; this is for the function's own subprocesses).
        environ["PYTHONPATH"] = f"{runtime_dir}/python:{opt}/python/lib/{PYTHON_DIR}/" \
                                f"site-packages:{opt}/python"
    elif runtime_family == "node":
        environ["NODE_PATH"] = f"{opt}/nodejs/node20/node_modules:{opt}/nodejs/node_modules:" \
                               f"{runtime_dir}/node_modules:{runtime_dir}:{task_root}"
    environ.update(user)
    environ.update({
        "_HANDLER": handler,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": runtime_dir,
        "AWS_ACCESS_KEY_ID": credentials[0],
        "AWS_SECRET_ACCESS_KEY": credentials[1],
        "AWS_SESSION_TOKEN": credentials[2],
    })
    environ.setdefault("AWS_ENDPOINT_URL", endpoint_url)
    if execution_env:
        environ["AWS_EXECUTION_ENV"] = execution_env
    if log_format:
        environ["AWS_LAMBDA_LOG_FORMAT"] = log_format
    if log_level:
        environ["AWS_LAMBDA_LOG_LEVEL"] = log_level
    return environ
