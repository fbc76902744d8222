"""The stack restarts one of its processes as it was started, in its place (`make soak`
restarts every process for its fresh reference)."""

from __future__ import annotations

import os

import psutil

from devtools.stack import Stack, wait_until


def test_a_process_restarted_runs_again_as_it_was_started_in_its_place() -> None:
    stack = Stack(dict(os.environ))
    try:
        first = stack.start("first", "tests.fixtures.idle", {"IDLE_NAME": "first"})
        old = stack.start("second", "tests.fixtures.idle", {"IDLE_NAME": "second"})
        new = stack.restart("second")
        assert old.poll() is not None  # stopped, and waited for
        assert new.poll() is None and new.pid != old.pid
        # Until it has exec'd, the child's environment is still its parent's.
        wait_until("the new process", lambda: "IDLE_NAME" in psutil.Process(new.pid).environ())
        assert psutil.Process(new.pid).environ()["IDLE_NAME"] == "second"
        assert stack.processes == [("first", first), ("second", new)]
    finally:
        assert stack.stop() == 0
