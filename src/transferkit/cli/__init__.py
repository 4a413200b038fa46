"""The `transferkit` command line: one module per command, clean one-line errors."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
import warnings

from ..errors import Interrupted, SkippedFileWarning, TransferkitError, plural
from . import (audit, demo, duplicates, evaluate, explore, export, extract, import_features, index, label, layers,
               lr_find, models, predict, predict_imagenet, report, serve, similar, train, viz)

COMMANDS = [models, layers, extract, predict_imagenet, train, lr_find, predict, evaluate, export, report, audit,
            similar, duplicates, explore, index, import_features, serve, label, viz, demo]


def _parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="transferkit",
        description="Reuse pretrained ImageNet CNNs on your own images: features, transfer learning, pictures.",
        epilog="Run `transferkit COMMAND --help` for a command's options and examples. "
               "Set TRANSFERKIT_DEBUG=1 to see tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"transferkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


# Exit status of every command (docs/reliability.md lists them too).
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SKIPPED, EXIT_ADDRESS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
SHOWN_SKIPPED = 20  # "skipped:" lines printed; the count on the last line covers the rest


class SkippedLines:
    """Prints each `SkippedFileWarning` as one `skipped: PATH: REASON` line (each file once, the first
    `SHOWN_SKIPPED`), lets other warnings through, and counts the files for the command's last line."""

    def __init__(self):
        self.seen: set[str] = set()
        self.other = warnings.showwarning

    def show(self, message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, SkippedFileWarning):
            return self.other(message, category, filename, lineno, file, line)
        path = getattr(message, "path", str(message))
        if path not in self.seen:  # a file two stages skipped (the checks, then the extraction) is one line
            self.seen.add(path)
            if len(self.seen) <= SHOWN_SKIPPED:
                print(str(message), file=sys.stderr, flush=True)

    def last_line(self) -> str:
        more = len(self.seen) - SHOWN_SKIPPED
        return (f"transferkit: skipped {plural(len(self.seen), 'file')}" + (f" ({more} not shown above)" if more > 0
                else " (named above)") + "; the exit status is 3")


def resume_command(argv: list[str], resume: list[str] | None) -> str:
    """The command line that resumes an interrupted one: without --overwrite, with the options in `resume` (each
    replacing the same option given before)."""
    valued = {opt for opt in (resume or []) if opt.startswith("--")} - {"--resume"}
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in valued:
            skip = "=" not in arg
            continue
        if name in ("--overwrite", "--resume"):
            continue
        out.append(arg)
    return shlex.join(["transferkit", *out, *(resume or [])])


def main(argv=None) -> int:
    """Entry point of the `transferkit` command; returns the exit status.

    Exit status: 0 success, 1 error, 2 bad usage, 3 finished but some files were skipped (each named on a
    `skipped:` line), 4 the server's address cannot be bound, 130 interrupted.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    skipped = SkippedLines()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", SkippedFileWarning)
            warnings.showwarning = skipped.show
            status = int(args.run(args) or 0)
    except TransferkitError as exc:
        if os.environ.get("TRANSFERKIT_DEBUG"):
            traceback.print_exc()
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", EXIT_ERROR)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            print(f"transferkit: interrupted; resume with: {resume_command(argv, exc.resume)}", file=sys.stderr)
        elif getattr(args, "resumes", False):
            print(f"transferkit: interrupted; the same command resumes: {resume_command(argv, None)}",
                  file=sys.stderr)
        else:
            print("transferkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # unexpected: still one line, traceback on request
        if os.environ.get("TRANSFERKIT_DEBUG"):
            raise
        print(f"transferkit: error: {type(exc).__name__}: {exc} (set TRANSFERKIT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_ERROR
    if skipped.seen:
        print(skipped.last_line(), file=sys.stderr)
        return status if status not in (EXIT_OK, EXIT_SKIPPED) else EXIT_SKIPPED
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
