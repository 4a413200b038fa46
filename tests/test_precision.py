"""`precision="auto"`: bfloat16 where the hardware runs it fast and the backbone gains from it, float32 elsewhere."""

import dataclasses

import pytest

import transferkit as tk
from transferkit import backend
from transferkit.backbones.registry import get_backbone, register_backbone


@pytest.fixture
def cpu(monkeypatch):
    """A CPU machine with the TensorFlow backend and the CPU flags the test sets."""
    flags = set()
    monkeypatch.setattr(backend, "accelerator", lambda: None)
    monkeypatch.setattr(backend, "name", lambda: "tensorflow")
    monkeypatch.setattr(backend, "_cpu_flags", lambda: frozenset(flags))
    return flags


@pytest.mark.parametrize("flags, expected", [
    (set(), "float32"), ({"avx512f"}, "float32"), ({"avx512_bf16"}, "bfloat16"), ({"amx_bf16"}, "bfloat16"),
])
def test_auto_on_cpu(cpu, flags, expected):
    cpu.update(flags)
    assert backend.resolve_precision("auto") == expected
    # a backbone measured no faster in bfloat16 on such CPUs stays in float32
    assert backend.resolve_precision("auto", cpu_bfloat16=False) == "float32"


def test_auto_needs_tensorflow_on_cpu(cpu, monkeypatch):
    cpu.add("amx_bf16")
    monkeypatch.setattr(backend, "name", lambda: "jax")  # XLA-CPU runs bfloat16 slower than float32
    assert backend.resolve_precision("auto") == "float32"


@pytest.mark.parametrize("capability, expected", [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"),
                                                  ((6, 1), "float32")])
def test_auto_on_gpu(monkeypatch, capability, expected):
    monkeypatch.setattr(backend, "accelerator", lambda: "gpu")
    monkeypatch.setattr(backend, "_gpu_compute_capability", lambda: capability)
    assert backend.resolve_precision("auto") == expected
    assert backend.resolve_precision("auto", cpu_bfloat16=False) == expected  # the CPU measurement does not apply


@pytest.mark.parametrize("value", ["float32", "bfloat16"])
def test_explicit_precision_passes_through(cpu, value):
    assert backend.resolve_precision(value, cpu_bfloat16=False) == value


def test_registry_marks_models_without_cpu_bfloat16_gain():
    assert not get_backbone("mobilenet_v3_small").cpu_bfloat16
    assert get_backbone("vgg16").cpu_bfloat16 and get_backbone("resnet50").cpu_bfloat16


def test_extract_records_the_precision_auto_chose(cpu, image_folder, tmp_path):
    cpu.add("avx512_bf16")
    register_backbone(dataclasses.replace(get_backbone("tiny_test"), name="tiny_test_fp32", aliases=(),
                                          cpu_bfloat16=False), overwrite=True)
    fast = tk.extract(image_folder, tmp_path / "a", model="tiny_test", weights="none", quiet=True)
    slow = tk.extract(image_folder, tmp_path / "b", model="tiny_test_fp32", weights="none", quiet=True)
    assert fast.manifest["settings"]["precision"] == "bfloat16"
    assert slow.manifest["settings"]["precision"] == "float32"
