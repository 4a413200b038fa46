"""Ctrl-C at safe points: inside `deferred()` a first SIGINT only asks to stop, and `check()` stops there.

TensorFlow converts a training step with AutoGraph the first time it runs, and AutoGraph falls back to the
unconverted function on most errors raised while it converts — a KeyboardInterrupt arriving then is lost (the
run trains on) or surfaces later as an unrelated error. Training therefore takes Ctrl-C at safe points only: a
running `fit` is asked to stop after its current batch (`add_action`), and the interrupt is raised between
batches or epochs.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class _Pending:
    """Whether a Ctrl-C arrived inside `deferred()` and has not been raised yet."""

    requested = False
    depth = 0
    actions: list = []  # what to do the moment a Ctrl-C arrives (ask a running `fit` to stop)


def _ask_to_stop(signum, frame):
    if _Pending.requested:  # a second Ctrl-C: the user insists, stop wherever we are
        raise KeyboardInterrupt
    _Pending.requested = True
    for action in list(_Pending.actions):
        action()


@contextlib.contextmanager
def deferred():
    """Inside, a first Ctrl-C raises KeyboardInterrupt at the next `check()` (or on leaving); a second one at
    once. Does nothing outside the main thread or where SIGINT is not Python's own handler (nested: the outer one
    rules).

    Example:
    >>> from transferkit import interrupts
    >>> with interrupts.deferred():
    ...     for step in range(3):
    ...         interrupts.check()  # a batch end: where a Ctrl-C is raised
    """
    own = threading.current_thread() is threading.main_thread() and (
        _Pending.depth or signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if not own:
        yield
        return
    previous = signal.signal(signal.SIGINT, _ask_to_stop) if _Pending.depth == 0 else None
    _Pending.depth += 1
    try:
        yield
    finally:
        _Pending.depth -= 1
        if _Pending.depth == 0:
            signal.signal(signal.SIGINT, previous)
            _Pending.actions.clear()
            requested, _Pending.requested = _Pending.requested, False
            if requested:
                raise KeyboardInterrupt


def requested() -> bool:
    """Whether a Ctrl-C arrived inside `deferred()` and waits to be raised by `check()`."""
    return _Pending.requested


def add_action(action) -> None:
    """Run `action()` as soon as a Ctrl-C arrives inside `deferred()` (at once if one is waiting): e.g. set a Keras
    model's `stop_training`, so `fit` ends after the current batch. `remove_action` undoes it."""
    _Pending.actions.append(action)
    if _Pending.requested:
        action()


def remove_action(action) -> None:
    if action in _Pending.actions:
        _Pending.actions.remove(action)


def check() -> None:
    """Raise KeyboardInterrupt when a Ctrl-C arrived inside `deferred()` (a safe point: between batches)."""
    if _Pending.requested:
        _Pending.requested = False
        raise KeyboardInterrupt
