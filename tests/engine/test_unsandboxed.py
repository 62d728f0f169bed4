"""``--insecure-no-sandbox``: functions run as plain processes, with the host's paths where the
sandbox would show /var/task and /opt."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from support import LaminaProcess, create, function_zip, invoke


def layer_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("python/layered.py", "VALUE = 'from a layer'\n")
    return buffer.getvalue()


def test_unsandboxed_functions_see_their_code_and_layers_at_host_paths(tmp_path: Path) -> None:
    server = LaminaProcess(tmp_path / "data", extra_env={"LAMINA_INSECURE_NO_SANDBOX": "1"})
    server.start()
    try:
        lam = server.client()
        layer = lam.publish_layer_version(LayerName="layered", Content={"ZipFile": layer_zip()},
                                          CompatibleRuntimes=["python3.11"])["LayerVersionArn"]
        name = create(lam, function_zip("probe"), Layers=[layer])
        _, body = invoke(lam, name, {"action": "describe"})
        environ = body["environ"]
        task_root = environ["LAMBDA_TASK_ROOT"]
        assert task_root != "/var/task" and Path(task_root).is_dir()
        assert body["cwd"] == task_root
        opt_bin = environ["PATH"].split(":")[-1]
        assert opt_bin.endswith("/bin") and opt_bin != "/opt/bin"
        assert Path(opt_bin).parent.joinpath("python", "layered.py").is_file()
        assert any(entry.endswith("/python") and Path(entry, "layered.py").is_file()
                   for entry in environ["PYTHONPATH"].split(":"))
    finally:
        server.stop()
