"""Ctrl-C inside `interrupts.deferred()` waits for a safe point; a second one does not."""

import os
import signal

import pytest

from transferkit import interrupts



@pytest.fixture(autouse=True)
def python_handles_ctrl_c():
    """Python's own SIGINT handler, as in a terminal, even when the suite runs where SIGINT is ignored (a
    background job without job control, nohup)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_first_ctrl_c_waits_for_check_and_a_second_stops_at_once():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)  # handled right away by Python: only asks to stop
            reached = True
            interrupts.check()
            reached_after_check = True
    assert reached and "reached_after_check" not in locals()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored

    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # raises here
            pytest.fail("the second Ctrl-C did not stop")


def test_a_ctrl_c_not_checked_is_raised_on_leaving_and_nothing_is_left_pending():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            with interrupts.deferred():  # nested: the outer one rules
                os.kill(os.getpid(), signal.SIGINT)
            inner_left = True
    assert inner_left
    with interrupts.deferred():
        interrupts.check()  # nothing pending any more


def test_an_action_runs_the_moment_ctrl_c_arrives_and_is_forgotten_on_leaving():
    seen = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            interrupts.add_action(lambda: seen.append("stop"))
            os.kill(os.getpid(), signal.SIGINT)
            assert seen == ["stop"] and interrupts.requested()
            interrupts.add_action(lambda: seen.append("late"))  # a pending Ctrl-C runs it at once
            assert seen == ["stop", "late"]
    with interrupts.deferred():
        assert not interrupts.requested()
        interrupts.add_action(lambda: seen.append("again"))
    assert seen == ["stop", "late"]  # the actions of a finished block never run again
