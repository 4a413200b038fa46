"""`transferkit layers`: a backbone's layers with output shapes and parameter counts."""

from __future__ import annotations

from ._options import add_command, add_input_size, add_model, import_keras

EXAMPLES = """  transferkit layers vgg16                   # 23 layers, 138,357,544 params
  transferkit layers vgg16 --input-size 150  # block5_pool is (4, 4, 512)
"""


def register(sub):
    p = add_command(sub, "layers", help="Show a backbone's layers, output shapes and parameters.",
                    examples=EXAMPLES, run=run)
    add_model(p, positional=True)
    add_input_size(p)


def run(args) -> int:
    import_keras()
    from ..backbones import get_backbone, layer_table

    spec = get_backbone(args.model)
    rows, totals = layer_table(spec, input_size=args.input_size)
    w_name = max(24, max(len(r[0]) for r in rows) + 1)
    w_type = max(12, max(len(r[1]) for r in rows) + 1)
    print(f"{spec.name} at {totals['input_size']} px"
          + ("" if totals["include_top"] else " (convolutional base only: the classifier needs "
             f"{spec.input_size} px)"))
    print(f"{'layer':<{w_name}}{'type':<{w_type}}{'output shape':<24}{'params':>14}")
    for name, kind, shape, params in rows:
        marks = " *" if name in spec.blocks else ""
        print(f"{name:<{w_name}}{kind:<{w_type}}{str(shape):<24}{params:>14,}{marks}")
    print(f"Total params: {totals['total']:,}")
    print(f"Convolutional base params: {totals['base']:,}")
    if spec.default_layer in spec.top_layers and not totals["include_top"]:
        last = rows[-1][0]
        print(f"Default feature layer: {spec.default_layer}, which needs the classifier at {spec.input_size} px; "
              f"at {totals['input_size']} px choose one listed here (e.g. --layer {last} or avg_pool). "
              "* marks block outputs; avg_pool/max_pool pool the base output.")
    else:
        print(f"Default feature layer: {spec.default_layer}; * marks block outputs; "
              "avg_pool/max_pool pool the base output.")
    return 0
