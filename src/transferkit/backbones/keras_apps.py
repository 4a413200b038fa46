"""Every image classifier of `keras.applications`, declared as data (one row per model)."""

from __future__ import annotations

import re

from .registry import BackboneSpec, register_backbone

_VGG_BLOCKS = tuple(f"block{i}_pool" for i in range(1, 6))


def _resnet_blocks(depths: tuple[int, int, int, int]) -> tuple[str, ...]:
    return ("conv1_relu",) + tuple(
        f"conv{stage}_block{n}_out" for stage, n in zip((2, 3, 4, 5), depths)
    )


def _resnet_v2_blocks(depths: tuple[int, int, int, int]) -> tuple[str, ...]:
    return ("pool1_pool",) + tuple(f"conv{s}_block{n}_out" for s, n in zip((2, 3, 4), depths[:3])) + ("post_relu",)


_INCEPTION_V3_BLOCKS = tuple(f"mixed{i}" for i in range(11))
_DENSENET_BLOCKS = ("pool1", "pool2_pool", "pool3_pool", "pool4_pool", "relu")
_MOBILENET_BLOCKS = ("conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu")
_MOBILENET_V2_BLOCKS = ("expanded_conv_project_BN", "block_2_add", "block_5_add", "block_12_add", "out_relu")
_VGG_TOP = ("flatten", "fc1", "fc2", "predictions")
_MOBILENET_V3_TOP = ("global_average_pooling2d", "conv_2", "logits", "predictions")

# name, Keras function, preprocessing, default size, default layer, blocks, top layers, finetune blocks
_TABLE = [
    ("vgg16", "VGG16", "caffe", 224, "fc2", _VGG_BLOCKS, _VGG_TOP, 1),
    ("vgg19", "VGG19", "caffe", 224, "fc2", _VGG_BLOCKS, _VGG_TOP, 1),
    ("resnet50", "ResNet50", "caffe", 224, "avg_pool", _resnet_blocks((3, 4, 6, 3)), None, 1),
    ("resnet101", "ResNet101", "caffe", 224, "avg_pool", _resnet_blocks((3, 4, 23, 3)), None, 1),
    ("resnet152", "ResNet152", "caffe", 224, "avg_pool", _resnet_blocks((3, 8, 36, 3)), None, 1),
    ("resnet50_v2", "ResNet50V2", "tf", 224, "avg_pool", _resnet_v2_blocks((3, 4, 6, 3)), None, 1),
    ("resnet101_v2", "ResNet101V2", "tf", 224, "avg_pool", _resnet_v2_blocks((3, 4, 23, 3)), None, 1),
    ("resnet152_v2", "ResNet152V2", "tf", 224, "avg_pool", _resnet_v2_blocks((3, 8, 36, 3)), None, 1),
    ("inception_v3", "InceptionV3", "tf", 299, "avg_pool", _INCEPTION_V3_BLOCKS, None, 2),
    ("inception_resnet_v2", "InceptionResNetV2", "tf", 299, "avg_pool", (), None, 1),
    ("xception", "Xception", "tf", 299, "avg_pool", (), None, 1),
    ("mobilenet", "MobileNet", "tf", 224, "avg_pool", _MOBILENET_BLOCKS, None, 1),
    ("mobilenet_v2", "MobileNetV2", "tf", 224, "avg_pool", _MOBILENET_V2_BLOCKS, None, 1),
    ("mobilenet_v3_small", "MobileNetV3Small", "none", 224, "avg_pool", (), _MOBILENET_V3_TOP, 1),
    ("mobilenet_v3_large", "MobileNetV3Large", "none", 224, "avg_pool", (), _MOBILENET_V3_TOP, 1),
    ("densenet121", "DenseNet121", "torch", 224, "avg_pool", _DENSENET_BLOCKS, None, 1),
    ("densenet169", "DenseNet169", "torch", 224, "avg_pool", _DENSENET_BLOCKS, None, 1),
    ("densenet201", "DenseNet201", "torch", 224, "avg_pool", _DENSENET_BLOCKS, None, 1),
    ("nasnet_mobile", "NASNetMobile", "tf", 224, "avg_pool", (), None, 1),
    ("nasnet_large", "NASNetLarge", "tf", 331, "avg_pool", (), None, 1),
]
_TABLE += [
    (f"efficientnet_b{i}", f"EfficientNetB{i}", "none", size, "avg_pool", (), None, 1)
    for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
]
_TABLE += [
    (f"efficientnet_v2_{v.lower()}", f"EfficientNetV2{v}", "none", size, "avg_pool", (), None, 1)
    for v, size in (("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384), ("M", 480), ("L", 480))
]
_TABLE += [
    (
        f"convnext_{v}",
        f"ConvNeXt{v.title() if v != 'xlarge' else 'XLarge'}",
        "none",
        224,
        "avg_pool",
        (),
        tuple(f"convnext_{v}_head_{part}" for part in ("gap", "layernorm", "dense")),
        1,
    )
    for v in ("tiny", "small", "base", "large", "xlarge")
]

# bfloat16 / float32 model-only on an AVX512-BF16 CPU (bench/precision_speed.py): 0.83×, 1.01×, 1.06×
_NO_CPU_BFLOAT16 = {"MobileNetV3Small", "MobileNetV3Large", "ConvNeXtTiny"}
# The tutorial's head flattens VGG's 4 × 4 × 512 block5_pool; the others are designed around global pooling.
_FLATTEN_HEAD = {"VGG16", "VGG19"}
_MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetLarge": 32}


class _KerasBuilder:
    """Calls `keras.applications.<keras_name>` lazily, so listing models never imports Keras."""

    def __init__(self, keras_name: str):
        self.keras_name = keras_name

    def __call__(self, **kwargs):
        import keras

        return getattr(keras.applications, self.keras_name)(**kwargs)

    def __repr__(self):
        return f"keras.applications.{self.keras_name}"


def _family(name: str) -> str:
    return re.sub(r"\d+$", "", name.split("_")[0])


for name, keras_name, prep, size, layer, blocks, top, ft in _TABLE:
    register_backbone(
        BackboneSpec(
            name=name,
            builder=_KerasBuilder(keras_name),
            preprocessing=prep,
            input_size=size,
            default_layer=layer,
            top_layers=top or ("predictions",),
            blocks=blocks,
            finetune_blocks=ft,
            min_input_size=_MIN_SIZE.get(keras_name, 32),
            cpu_bfloat16=keras_name not in _NO_CPU_BFLOAT16,
            head_pooling="flatten" if keras_name in _FLATTEN_HEAD else "avg",
            family=_family(name),
            keras_name=keras_name,
            description=f"keras.applications.{keras_name}",
            aliases=(keras_name,),
        )
    )
