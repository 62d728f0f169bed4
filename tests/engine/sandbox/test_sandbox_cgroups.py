"""Controller detection and slot configuration, on synthetic trees (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

from lamina.engine.sandbox import cgroups

V1_LINE = "35 31 0:32 / /sys/fs/cgroup/{c} rw,relatime - cgroup cgroup rw,{o}\n"
V2_LINE = "41 31 0:38 / {p} rw,relatime - cgroup2 cgroup2 rw\n"


def write_mountinfo(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" + text)
    return str(path)


def test_v1_controllers_are_found_per_hierarchy(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path, V1_LINE.format(c="memory", o="memory")
                           + V1_LINE.format(c="pids", o="pids")
                           + V1_LINE.format(c="cpu,cpuacct", o="cpu,cpuacct")
                           + V2_LINE.format(p=tmp_path))
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    found = {h.path.name: (h.version, set(h.controllers))
             for h in cgroups.detect_hierarchies(info)}
    assert found == {"memory": (1, {"memory"}), "pids": (1, {"pids"}),
                     "cpu,cpuacct": (1, {"cpu"})}


def test_v2_offers_what_v1_does_not_have(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path, V1_LINE.format(c="pids", o="pids")
                           + V2_LINE.format(p=tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    found = {(h.version, frozenset(h.controllers)) for h in cgroups.detect_hierarchies(info)}
    assert found == {(1, frozenset({"pids"})), (2, frozenset({"memory", "cpu"}))}
    assert cgroups.missing_controllers(cgroups.detect_hierarchies(info)) == []


def test_nothing_usable_is_reported(tmp_path: Path) -> None:
    info = write_mountinfo(tmp_path, V2_LINE.format(p=tmp_path))
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    hierarchies = cgroups.detect_hierarchies(info)
    assert cgroups.missing_controllers(hierarchies) == ["memory", "pids"]


def test_v2_slot_writes_v2_files(tmp_path: Path) -> None:
    hierarchy = cgroups.Hierarchy(tmp_path, 2, frozenset({"memory", "pids", "cpu"}))
    slot_dir = tmp_path / "s0"
    slot_dir.mkdir()
    for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.weight", "memory.peak"):
        (slot_dir / name).write_text("")
    (slot_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    slot = cgroups.Slot(0, {hierarchy: slot_dir}, 20000)
    slot.configure(1769, 99)
    assert (slot_dir / "memory.max").read_text() == str(1769 << 20)
    assert (slot_dir / "memory.swap.max").read_text() == "0"
    assert (slot_dir / "pids.max").read_text() == "99"
    assert (slot_dir / "cpu.weight").read_text() == "100"
    assert slot.take_oom_kills() == 0  # counted from the slot's creation
    (slot_dir / "memory.events").write_text("oom_kill 3\n")
    assert slot.take_oom_kills() == 1


def test_cpu_weight_follows_memory(tmp_path: Path) -> None:
    hierarchy = cgroups.Hierarchy(tmp_path, 1, frozenset({"memory", "pids", "cpu"}))
    for mb, shares in ((128, 74), (1769, 1024), (10240, 5928)):
        slot_dir = tmp_path / f"s{mb}"
        slot_dir.mkdir()
        for name in ("memory.limit_in_bytes", "memory.max_usage_in_bytes", "pids.max",
                     "cpu.shares", "memory.oom_control"):
            (slot_dir / name).write_text("")
        slot = cgroups.Slot(mb, {hierarchy: slot_dir}, 20000)
        slot.configure(mb, 1024)
        assert (slot_dir / "cpu.shares").read_text() == str(shares)
        assert (slot_dir / "memory.limit_in_bytes").read_text() == str(mb << 20)
