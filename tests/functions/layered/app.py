"""Uses what its layers put in /opt: a Python module, an overridden one, a program on PATH."""

import os
import subprocess


def handler(event, context):
    import mylib
    import shared

    try:
        open("/opt/python/new-file", "w").close()
        writable = True
    except OSError:
        writable = False
    tool = subprocess.run(["tool"], capture_output=True, text=True, check=False)
    return {
        "mylib": mylib.NAME,
        "shared": shared.WHO,
        "shared_file": shared.__file__,
        "opt": sorted(os.listdir("/opt")),
        "writable": writable,
        "tool": tool.stdout.strip(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "path": os.environ.get("PATH", ""),
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH", ""),
        "node_path": os.environ.get("NODE_PATH", ""),
    }
