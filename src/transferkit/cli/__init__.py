"""The `transferkit` command line: one module per command, clean one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..errors import TransferkitError
from . import (audit, demo, duplicates, evaluate, explore, export, extract, import_features, index, layers, lr_find,
               models, predict, predict_imagenet, report, serve, similar, train, viz)

COMMANDS = [models, layers, extract, predict_imagenet, train, lr_find, predict, evaluate, export, report, audit,
            similar, duplicates, explore, index, import_features, serve, viz, demo]


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


def main(argv=None) -> int:
    """Entry point of the `transferkit` command; returns the exit status.

    Exit status: 0 success, 1 error, 2 bad usage, 3 finished but some images were skipped.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except TransferkitError as exc:
        if os.environ.get("TRANSFERKIT_DEBUG"):
            traceback.print_exc()
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("transferkit: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: still one line, traceback on request
        if os.environ.get("TRANSFERKIT_DEBUG"):
            raise
        print(f"transferkit: error: {type(exc).__name__}: {exc} (set TRANSFERKIT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
