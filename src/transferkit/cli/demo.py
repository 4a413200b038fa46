"""`transferkit demo`: features, training, pictures and search end to end on real photos and a real data set, offline."""

from __future__ import annotations

from ..errors import require_extras
from ._options import add_command, add_precision, add_quiet, import_keras, integer

EXAMPLES = """  transferkit demo                   # writes ./demo-output
  transferkit demo -o /tmp/tk-demo --epochs 20
"""


def register(sub):
    p = add_command(sub, "demo", help="Run the offline demo: photo features, a digits classifier, pictures.",
                    examples=EXAMPLES, run=run)
    p.add_argument("-o", "--output", default=None, metavar="OUT", help="output folder (default: ./demo-output)")
    p.add_argument("--epochs", type=integer(1), default=40, help="epochs of the digits head (default: 40)")
    add_precision(p)
    add_quiet(p)


def run(args) -> int:
    require_extras("transferkit demo", "demo")
    import_keras()
    from ..demo import default_out, run_demo

    run_demo(args.output or default_out(), epochs=args.epochs, precision=args.precision, quiet=args.quiet)
    return 0
