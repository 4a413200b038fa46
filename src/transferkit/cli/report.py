"""`transferkit report`: (re)write a run's report.html."""

from __future__ import annotations

from ..errors import require_extras
from ._options import add_command, import_keras

EXAMPLES = """  transferkit report runs/vgg16-finetune-20261128-101500

`train` writes report.html at the end of every run; this command writes it for runs made before, or again.
One self-contained file (opens from disk): settings, stages and the epoch each kept, accuracy/loss curves,
per-class precision/recall/F1, confusion matrix, the highest-loss validation images with a Grad-CAM overlay,
and for `features` runs a PCA map of the validation features.
"""


def register(sub):
    p = add_command(sub, "report", help="Write a run's report.html.", examples=EXAMPLES, run=run)
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")


def run(args) -> int:
    require_extras("transferkit report", "viz")
    import_keras()
    from ..train.report import write_report

    print(f"Wrote {write_report(args.run_dir)}")
    return 0
