"""Request and trace ids: Lambda's formats, unique, and drawn from the OS's CSPRNG."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from lamina.observe import ids

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0$")


def test_request_ids_are_unique_version_4_uuids() -> None:
    made = [ids.new_request_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    for request_id in made[:2_000]:
        assert UUID4.match(request_id), request_id
        parsed = uuid.UUID(request_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_trace_ids_are_fresh_unless_the_caller_sent_a_root() -> None:
    first, second = ids.new_trace_id(None), ids.new_trace_id("")
    assert TRACE.match(first) and TRACE.match(second) and first != second
    sent = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert ids.new_trace_id(sent) == sent
    assert TRACE.match(ids.new_trace_id("Parent=53995c3f42cd8ad8"))


def test_ids_come_from_os_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not from ``random``: a function sees its trace ids, and a Mersenne Twister's next
    outputs follow from enough of its past ones."""
    monkeypatch.setattr(ids, "_random", ids._RandomBytes())
    monkeypatch.setattr(os, "urandom", lambda count: bytes(range(16)) * (count // 16))
    assert ids.new_request_id() == "00010203-0405-4607-8809-0a0b0c0d0e0f"
    assert ids.new_trace_id().endswith("-000102030405060708090a0b;Sampled=0")


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ids.new_request_id()  # the parent holds a page it has started on
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.close(read)
        os.write(write, ids.new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert UUID4.match(child)
    assert child != ids.new_request_id()
