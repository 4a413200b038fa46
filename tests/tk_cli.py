"""Runs the transferkit CLI with the tiny test backbone registered (for subprocess tests)."""

import sys

import tiny_backbone

tiny_backbone.register()

from transferkit.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
