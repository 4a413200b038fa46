"""`transferkit export`: a trained run as ONNX, OpenVINO, SavedModel or LiteRT, checked before it is written."""

from __future__ import annotations

from ..errors import require_extras
from ._options import add_command, import_keras

EXAMPLES = """  transferkit export runs/vgg16-finetune-... --format onnx -o classifier.onnx
  transferkit export runs/lite0-features-... --format openvino -o classifier.xml      # + classifier.bin
  transferkit export runs/lite0-features-... --format saved_model -o classifier_savedmodel/
  transferkit export runs/lite0-features-... --format litert -o classifier.tflite

The exported model takes raw RGB pixels 0-255 (float32, NHWC, the run's input size; preprocessing inside) and
outputs class probabilities (n, classes). Before anything is written it is loaded in its own runtime
(onnxruntime, OpenVINO, TensorFlow, the LiteRT interpreter) and run on a few of the run's validation images:
the command fails if any probability differs from model.keras by more than 1e-4. PATH.json beside the export
holds the class names, input size and that check. Needs: pip install 'transferkit[export]'.
"""


def register(sub):
    from ..train.export import FORMATS

    p = add_command(sub, "export", help="Export a trained run to ONNX, OpenVINO, SavedModel or LiteRT.",
                    examples=EXAMPLES, run=run)
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")
    p.add_argument("--format", "-f", required=True, choices=list(FORMATS))
    p.add_argument("-o", "--output", required=True, help="file to write (a folder for saved_model)")


def run(args) -> int:
    if args.format in ("onnx", "openvino"):
        require_extras(f"transferkit export --format {args.format}", "export")
    import_keras()
    from ..train.export import export

    meta = export(args.run_dir, format=args.format, path=args.output)
    check = meta["check"]
    print(f"Wrote {args.output} ({args.format}); checked with {check['runtime']} on {check['images']}: "
          f"largest difference from model.keras {check['max_abs_difference']:.2e} (limit {check['tolerance']:g}).")
    print(f"Class names and input size: {args.output.rstrip('/')}.json")
    return 0
