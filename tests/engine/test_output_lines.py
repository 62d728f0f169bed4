"""A process's output cut into log lines (``lamina/engine/output.py``), on a real pipe."""

from __future__ import annotations

import fcntl
import os

from lamina.engine.output import MAX_LINE_BYTES, OutputLines


def test_lines_are_whole_across_reads_and_the_rest_comes_at_the_end() -> None:
    lines: list[str] = []
    output = OutputLines(lines.append)
    output.feed(b"one\ntw")
    output.feed(b"o\nthr")
    assert lines == ["one", "two"]
    output.flush()
    assert lines == ["one", "two", "thr"]
    output.flush()  # nothing is left twice
    assert lines == ["one", "two", "thr"]


def test_a_line_without_a_newline_is_not_held_past_the_limit() -> None:
    lines: list[str] = []
    output = OutputLines(lines.append)
    output.feed(b"x" * (MAX_LINE_BYTES + 1))
    assert lines == ["x" * (MAX_LINE_BYTES + 1)]
    output.feed(b"\xff\n")  # invalid UTF-8 is replaced, not fatal
    assert lines[-1] == "\ufffd"


def test_read_stops_at_the_budget_and_reports_the_end_of_the_pipe() -> None:
    lines: list[str] = []
    output = OutputLines(lines.append)
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        os.write(write_fd, b"a\n" * 50_000)  # 100 KB: more than one read's 64 KB
        assert output.read(read_fd, 1) is False  # one read, then the budget is spent
        assert len(lines) == 32768
        assert output.read(read_fd, 10**6) is False
        assert len(lines) == 50_000
        os.write(write_fd, b"b\n")
        assert output.read(read_fd, 10**6) is False  # drained, the writer still open
        assert lines[-1] == "b"
        os.write(write_fd, b"tail")
        os.close(write_fd)
        write_fd = -1
        assert output.read(read_fd, 10**6) is True
        assert lines[-1] == "tail"
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
