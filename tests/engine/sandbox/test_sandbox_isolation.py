"""What an environment sees from inside: identity, files, processes, descriptors, environment."""

from __future__ import annotations

import json
from typing import Any

from conftest import BASE_ENV, Layout, Runner

from lamina.engine.sandbox.api import ExecEntry


def report(runner: Runner, launcher: Any, **kwargs: Any) -> dict[str, Any]:
    status, output, _ = runner.run(runner.execute(launcher, runner.spec(**kwargs)))
    assert status.code == 0, output
    return json.loads(output)


def sh(runner: Runner, launcher: Any, script: str, **kwargs: Any) -> tuple[Any, str]:
    spec = runner.spec(entry=ExecEntry(("/bin/sh", "-c", script)), **kwargs)
    status, output, _ = runner.run(runner.execute(launcher, spec))
    return status, output


def test_python_entry_runs_unprivileged_as_pid_1_of_its_own_namespace(runner: Runner,
                                                                       ns: Any) -> None:
    info = report(runner, ns)
    assert info["uid"] >= 20000 and info["euid"] == info["uid"] == info["gid"]
    assert info["groups"] == []
    assert info["pid"] == 1
    assert info["proc"] == [1]  # /proc is the environment's own: nothing of the host
    assert info["no_new_privs"] == "1"
    assert int(info["cap_eff"], 16) == 0
    assert info["cwd"] == "/var/task"
    assert info["hostname"] == "localhost"
    assert info["lamina_modules"] == []


def test_environment_is_exactly_the_spec(runner: Runner, ns: Any) -> None:
    environ = {"AWS_LAMBDA_FUNCTION_NAME": "f", "SECRET": "s3cr=t\nline2", "EMPTY": ""}
    assert report(runner, ns, environ=environ)["environ"] == dict(BASE_ENV, **environ)
    spec = runner.spec(entry=ExecEntry(("/usr/bin/env", "-0")), environ=environ)
    status, output, _ = runner.run(runner.execute(ns, spec))
    assert status.code == 0
    pairs = dict(item.split("=", 1) for item in output.split("\0") if item)
    assert pairs == dict(BASE_ENV, **environ)


def test_sys_path_is_lambdas_without_any_site_packages(runner: Runner, ns: Any,
                                                       layout: Layout) -> None:
    path = report(runner, ns)["path"]
    assert path[:4] == ["/var/task", "/opt/python/lib/python3.11/site-packages", "/opt/python",
                        "/var/runtime/python"]
    assert all("site-packages" not in p and ".venv" not in p for p in path[4:])
    assert str(layout.root) not in json.dumps(path)


def test_inherited_descriptors_are_closed(runner: Runner, ns: Any) -> None:
    assert report(runner, ns)["fds"] == [0, 1, 2, 3]  # 3: the listing's own directory
    _, output = sh(runner, ns, "ls /proc/self/fd")
    assert output.split() == ["0", "1", "2", "3"]


def test_code_is_read_only_at_var_task(runner: Runner, ns: Any) -> None:
    _, output = sh(runner, ns, "cat /var/task/hello.txt; touch /var/task/new 2>&1; "
                                    "echo x > /var/task/hello.txt 2>&1; "
                                    "grep ' /var/task ' /proc/self/mountinfo")
    lines = output.splitlines()
    assert lines[0] == "hello from a"
    assert "Read-only file system" in lines[1] and "Read-only file system" in lines[2]
    assert " ro," in lines[3] and "nosuid" in lines[3]


def test_other_functions_and_the_data_dir_are_invisible(runner: Runner, ns: Any,
                                                        layout: Layout) -> None:
    script = (f"ls -A /.lamina 2>&1; echo --; ls {layout.data} 2>&1; echo --; "
              f"cat {layout.fn_b}/secret.txt 2>&1; echo --; cat /proc/self/mountinfo; echo --; "
              "grep -rl 'secret of b' /var /opt /tmp /etc 2>/dev/null; echo --; ls /")
    _, output = sh(runner, ns, script)
    hidden, data, secret, mountinfo, found, root = output.split("--\n")
    assert hidden.strip() in ("", "ls: cannot open directory '/.lamina': Permission denied")
    assert "No such file" in data and "No such file" in secret
    assert "fn-b" not in mountinfo and "/code " not in mountinfo and "layers" not in mountinfo
    assert found.strip() == ""
    assert set(root.split()) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt",
                                 "proc", "root", "sbin", "tmp", "usr", "var"}


def test_tmp_is_private_and_sized(runner: Runner, ns: Any) -> None:
    async def scenario() -> tuple[str, str]:
        first = await ns.spawn(runner.spec(
            entry=ExecEntry(("/bin/sh", "-c", "echo a > /tmp/mine; sleep 30"))))
        try:
            _, output, _ = await runner.execute(ns, runner.spec(
                ephemeral_mb=8,
                entry=ExecEntry(("/bin/sh", "-c",
                                 "ls -A /tmp; head -c 20000000 /dev/zero > /tmp/big; "
                                 "echo status=$?; stat -c %s /tmp/big; "
                                 "touch /dev/shm/x && echo shm-ok"))))
        finally:
            first.kill()
            await first.wait()
        return output, ""

    output, _ = runner.run(scenario())
    lines = output.splitlines()
    assert "mine" not in output
    assert any(line.startswith("status=") and line != "status=0" for line in lines)
    size = int(next(line for line in lines if line.isdigit()))
    assert 0 < size <= 8 * 1024 * 1024
    assert "shm-ok" in lines


def test_layers_are_read_only_at_opt(runner: Runner, ns: Any, layout: Layout) -> None:
    status, output, _ = runner.run(runner.execute(ns, runner.spec(
        opt_dir=layout.layer, environ={"TEST_ACTION": "import-layer"})))
    assert status.code == 0 and output.strip() == "42"
    status, output = sh(runner, ns, "touch /opt/x 2>&1; ls /opt", opt_dir=layout.layer)
    assert "Read-only file system" in output and "python" in output


def test_network_none_has_only_loopback(runner: Runner, ns: Any) -> None:
    _, output = sh(runner, ns, "cat /proc/net/dev", network="none")
    interfaces = {line.split(":")[0].strip() for line in output.splitlines() if ":" in line}
    assert interfaces == {"lo"}
    _, output = sh(runner, ns, "cat /proc/net/dev")
    assert len({line.split(":")[0] for line in output.splitlines() if ":" in line}) >= 1


def test_concurrent_environments_get_distinct_uids(runner: Runner, ns: Any) -> None:
    async def two() -> tuple[int, int]:
        sleeper = await ns.spawn(runner.spec(entry=ExecEntry(("/bin/sleep", "30"))))
        try:
            with open(f"/proc/{sleeper.pid}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            _, output, _ = await runner.execute(ns, runner.spec())
        finally:
            sleeper.kill()
            await sleeper.wait()
        return uid, json.loads(output)["uid"]

    first, second = runner.run(two())
    assert first >= 20000 and second >= 20000 and first != second
