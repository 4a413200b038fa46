"""The one user-facing error type and the argument checks that raise it."""

from __future__ import annotations

import difflib
from typing import Iterable


class TransferkitError(ValueError):
    """A problem with the user's input or environment, with a message saying how to fix it.

    The command line prints the message as one line (no traceback unless
    `TRANSFERKIT_DEBUG=1`); library users can catch it as a `ValueError`.
    """


def close_matches(value: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Return up to `n` entries of `choices` that look like `value` (case-insensitive)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(str(value).lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(value, choices: Iterable[str]) -> str:
    """" Did you mean 'a' or 'b'?" for the close matches of `value` in `choices`, or "" when none is close."""
    hits = close_matches(str(value), [str(c) for c in choices])
    return f" Did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """ "1 file", "3 files": a count with its noun in the right number.

    Example:
    >>> plural(1, "file"), plural(2, "class", "classes")
    ('1 file', '2 classes')
    """
    return f"{n} {noun if n == 1 else (plural_form or noun + 's')}"


def check_positive_int(arg: str, value) -> int:
    """Return `value` as an int, or raise naming `arg` unless it is an integer >= 1 (bools are refused)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise TransferkitError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    return int(value)


def settings_diff(old: dict, new: dict, ignore: Iterable[str] = ()) -> list[str]:
    """The keys whose values differ between two settings dicts, as "key: old -> new" lines."""
    skip = set(ignore)
    keys = sorted((set(old) | set(new)) - skip)
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_one_of(arg: str, value, choices: Iterable, hint: str = "") -> None:
    """Raise `TransferkitError` unless `value` is in `choices`, naming the argument and close matches.

    Example:
    >>> check_one_of("pooling", "mean", ["none", "avg", "max", "flatten"])
    Traceback (most recent call last):
    ...
    transferkit.errors.TransferkitError: `pooling` must be one of ['none', 'avg', 'max', 'flatten']. Received: pooling='mean'
    """
    choices = list(choices)
    if value in choices:
        return
    raise TransferkitError(one_of_message(arg, value, choices, hint))


def one_of_message(arg: str, value, choices: list, hint: str = "") -> str:
    """The message of `check_one_of`; long lists are shortened and close matches suggested."""
    shown = choices if len(choices) <= 12 else choices[:12] + ["..."]
    msg = f"`{arg}` must be one of {shown}. Received: {arg}={value!r}"
    more = did_you_mean(value, choices)
    if more:
        msg += "." + more
    if hint:
        msg += f" {hint}"
    return msg
