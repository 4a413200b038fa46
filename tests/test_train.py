"""Transfer learning: each strategy learns, freezing is real, features are cached, saved models stand alone."""

import csv
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.train import evaluate, predict, train
from transferkit.train.model import build_classifier

from conftest import make_split_folder

FAST = dict(weights="none", learning_rate=1e-3, optimizer="adam", precision="float32", batch_size=10)


@pytest.fixture
def train_folder(tmp_path):
    """Two classes of striped vs checked images: easy, but not learnable from colour alone."""
    return make_split_folder(tmp_path / "data", {"train": 24, "validation": 10}, ["checks", "stripes"], size=(40, 40))


def weights_of(layer):
    return [np.array(w) for w in layer.get_weights()]


@pytest.mark.parametrize("strategy", ["features", "frozen", "finetune"])
def test_each_strategy_learns_and_writes_the_run_folder(strategy, train_folder, tmp_path):
    result = train(train_folder, model="tiny_test", strategy=strategy, runs_root=tmp_path / "runs", name="r",
                   epochs=10, finetune_epochs=3, **FAST)
    assert result.metrics["accuracy"] >= 0.8, result.metrics
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "history.csv", "curves.png", "model.keras", "metrics.json", "confusion.png",
            "top_losses.png"} <= files
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"checks", "stripes"} and np.array(metrics["confusion"]).sum() == 20
    assert len(result.stages) == (2 if strategy == "finetune" else 1)
    with zipfile.ZipFile(result.run_dir / "model.keras") as z, z.open("model.weights.h5") as f:
        assert b"optimizer" not in f.read()  # an inference model: no optimizer state saved
    with pytest.raises(TransferkitError, match="already exists"):
        train(train_folder, model="tiny_test", strategy=strategy, runs_root=tmp_path / "runs", name="r", **FAST)


@pytest.mark.slow
def test_vgg16_features_strategy_learns(train_folder, tmp_path):
    result = train(train_folder, model="vgg16", strategy="features", input_size=32, runs_root=tmp_path / "runs",
                   epochs=15, **FAST)
    assert result.metrics["accuracy"] >= 0.8


def test_frozen_vgg16_has_four_trainable_tensors():
    clf, base = build_classifier(tk.get_backbone("vgg16"), 2, input_size=32, weights="none")
    assert len(clf.trainable_weights) == 4  # Dense 256 and Dense 1: kernel + bias each, as in the tutorial
    assert len(base.trainable_weights) == 0


@pytest.fixture
def base_spy(monkeypatch):
    """Records the base's weights right after the classifier is built, and the base itself."""
    from transferkit.train import strategies as runner

    seen = {}
    original = runner.build_classifier

    def spy(*args, **kwargs):
        clf, base = original(*args, **kwargs)
        seen["before"] = {layer.name: weights_of(layer) for layer in base.layers if layer.weights}
        seen["base"] = base
        return clf, base

    monkeypatch.setattr(runner, "build_classifier", spy)
    return seen


def test_frozen_base_is_bit_identical_after_training(train_folder, tmp_path, base_spy):
    seen = base_spy
    train(train_folder, model="tiny_test", strategy="frozen", runs_root=tmp_path / "runs", epochs=3, **FAST)
    for layer in seen["base"].layers:
        for a, b in zip(seen["before"].get(layer.name, []), weights_of(layer)):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)


def test_finetune_changes_only_the_top_block_and_head_and_keeps_batchnorm_stats(train_folder, tmp_path,
                                                                                base_spy):
    seen = base_spy
    train(train_folder, model="tiny_test", strategy="finetune", runs_root=tmp_path / "runs", epochs=2,
          finetune_epochs=3, finetune_learning_rate=1e-2, **FAST)
    base = seen["base"]
    changed = {layer.name for layer in base.layers if layer.weights and any(
        not np.array_equal(a, b) for a, b in zip(seen["before"][layer.name], weights_of(layer)))}
    assert changed == {"block2_conv1"}  # tiny_test's top block; block1 and BatchNorm untouched
    bn_before = seen["before"]["block2_bn"]
    for a, b in zip(bn_before, weights_of(base.get_layer("block2_bn"))):
        np.testing.assert_array_equal(a, b)


def test_features_are_extracted_once_across_runs(train_folder, tmp_path, monkeypatch):
    from transferkit.extract import extractor

    calls = {"n": 0}
    original = extractor.Extractor.__call__

    def counting(self, images):
        calls["n"] += 1
        return original(self, images)

    monkeypatch.setattr(extractor.Extractor, "__call__", counting)
    train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", name="a", epochs=2,
          **FAST)
    first = calls["n"]
    assert first > 0
    train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", name="b", epochs=2,
          **FAST)
    assert calls["n"] == first  # the second run read the cache


@pytest.mark.slow
def test_saved_model_reloads_without_transferkit_and_predicts_the_same(train_folder, tmp_path):
    result = train(train_folder, model="tiny_test", strategy="frozen", runs_root=tmp_path / "runs", epochs=2,
                   **FAST)
    rows, skipped = predict(result.run_dir, train_folder / "validation" / "checks", tmp_path / "p.csv")
    assert not skipped and len(rows) == 10
    ours = np.array([r["probabilities"] for r in rows])
    x = np.stack([tk.load_image(str(train_folder / "validation" / "checks" / r["path"]), 32) for r in rows])
    np.save(tmp_path / "x.npy", x.astype("float32"))
    script = ("import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); "
              "assert 'transferkit' not in sys.modules; np.save(sys.argv[3], np.asarray(m(np.load(sys.argv[2]))))")
    r = subprocess.run([sys.executable, "-c", script, str(result.run_dir / "model.keras"), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    assert r.returncode == 0, r.stderr[-2000:]
    theirs = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(ours[:, 1], theirs[:, 0], rtol=1e-5, atol=1e-6)
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "path,predicted,p_checks,p_stripes"


def test_evaluate_any_labelled_folder(train_folder, tmp_path):
    result = train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", epochs=10,
                   **FAST)
    m = evaluate(result.run_dir, train_folder / "validation", tmp_path / "eval")
    assert m["n"] == 20 and m["accuracy"] >= 0.8
    assert (tmp_path / "eval" / "confusion.png").exists()
    with open(tmp_path / "eval" / "predictions.csv") as f:  # one row per image: true, predicted, loss
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and {"path", "true", "predicted", "loss", "p_checks", "p_stripes"} == set(rows[0])


def test_validation_split_and_layout_errors(train_folder, tmp_path):
    import shutil

    shutil.rmtree(train_folder / "validation")
    with pytest.raises(TransferkitError, match="--validation-split"):
        train(train_folder, model="tiny_test", runs_root=tmp_path / "runs", **FAST)
    result = train(train_folder, model="tiny_test", validation_split=0.25, runs_root=tmp_path / "runs", epochs=2,
                   **FAST)
    assert result.config["counts"] == {"train": 36, "validation": 12}
    with pytest.raises(TransferkitError, match="train/ folder"):
        train(tmp_path, model="tiny_test", runs_root=tmp_path / "runs", **FAST)


@pytest.mark.slow
def test_train_cli(cli, train_folder, tmp_path):
    r = cli("train", train_folder, "--model", "tiny_test", "--weights", "none", "--epochs", "3", "--runs",
            tmp_path / "runs", "--name", "cli", "--precision", "float32", "-q")
    assert r.returncode == 0, r.stderr
    assert "validation accuracy" in r.stdout and (tmp_path / "runs" / "cli" / "model.keras").exists()
    r = cli("predict", tmp_path / "runs" / "cli", train_folder / "validation" / "checks")
    assert r.returncode == 0 and r.stdout.count("\n") == 10


@pytest.mark.slow
def test_finetune_can_start_from_a_features_run(train_folder, tmp_path):
    first = train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", name="f",
                  epochs=10, **FAST)
    result = train(train_folder, model="tiny_test", strategy="finetune", runs_root=tmp_path / "runs", name="ft",
                   init_from=first.run_dir, epochs=2, finetune_epochs=2, **FAST)
    assert [s["epochs"] for s in result.stages] == [0, 2]
    assert result.metrics["accuracy"] >= 0.8
    assert result.config["augmentation"]["rotation"] == 40.0  # the unfrozen stage trains on augmented images
    with pytest.raises(TransferkitError, match="input_size=32.*input_size=40"):
        train(train_folder, model="tiny_test", strategy="finetune", input_size=40, runs_root=tmp_path / "runs",
              init_from=first.run_dir, **FAST)


@pytest.mark.slow
def test_validation_split_never_trains_on_held_out_images(tmp_path):
    """Noise images with coin-flip labels hold nothing to learn: only a leak makes validation accuracy high."""
    from conftest import make_image
    from transferkit.data.splits import find_splits

    rng = np.random.default_rng(3)
    root = tmp_path / "noise"
    for i in range(96):
        make_image(root / "train" / ("a" if rng.random() < 0.5 else "b") / f"{i:03d}.png", rng, size=(32, 32))
    result = train(root, model="tiny_test", strategy="features", validation_split=0.25, runs_root=tmp_path / "runs",
                   epochs=40, dropout=0.0, pooling="flatten", **FAST)  # 1024 inputs: enough to memorise
    assert result.history["accuracy"][-1] >= 0.95  # the head memorises its own rows...
    assert result.history["val_accuracy"][-1] <= 0.8  # ...and cannot know the held-out ones
    assert result.metrics["accuracy"] <= 0.8 and result.metrics["n"] == 24
    held_out = set(find_splits(root, validation_split=0.25).validation.paths)
    cached = [tk.load_features(d) for d in (tmp_path / "runs" / ".feature-cache").iterdir()]
    by_size = {len(fs): set(fs.paths) for fs in cached}
    assert sorted(by_size) == [24, 72]
    assert by_size[24] == held_out and not by_size[72] & held_out


def test_best_epoch_survives_a_restart_and_breaks_ties_by_validation_loss(tmp_path):
    import keras

    from transferkit.train.run_folder import epoch_checkpoint

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    def epochs(logs):
        callback = epoch_checkpoint(tmp_path, 1, patience=2)  # a fresh callback: as in a resumed process
        callback.set_model(model)
        callback.on_train_begin()
        for epoch, (acc, loss) in logs:
            model.layers[0].bias.assign([float(epoch)])  # marks which epoch's weights were saved
            callback.on_epoch_end(epoch, {"val_accuracy": acc, "val_loss": loss})
        return callback

    first = epochs([(0, (0.5, 1.0)), (1, (0.8, 0.6)), (2, (0.8, 0.4))])
    assert first.best_epoch == 3  # same accuracy as epoch 2, lower loss
    second = epochs([(3, (0.7, 0.3))])  # must not take its first epoch as the best
    assert second.best_epoch == 3 and second.wait == 1 and not getattr(model, "stop_training", False)
    assert float(model.layers[0].bias.numpy()[0]) == 3.0
    third = epochs([(4, (0.6, 0.2))])
    assert third.wait == 2 and model.stop_training  # patience counts epochs across the restart
    state = json.loads((tmp_path / ".stage1.json").read_text())
    assert [r["epoch"] for r in state["rows"]] == [0, 1, 2, 3, 4]
    model.load_weights(tmp_path / state["best_file"])
    assert float(model.layers[0].bias.numpy()[0]) == 2.0
    # only the files the committed state names are left: the best epoch's weights and the last backup
    assert sorted(p.name for p in tmp_path.glob(".*.weights.h5")) == sorted([state["best_file"], state["backup"]])


@pytest.mark.slow
def test_head_pools_as_the_registry_says_and_layer_and_pooling_choose(train_folder, tmp_path):
    assert tk.get_backbone("vgg16").head_pooling == "flatten"  # the tutorial's head
    assert tk.get_backbone("efficientnet_lite0").head_pooling == "avg"
    result = train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", name="avg",
                   epochs=10, **FAST)
    head = result.model.get_layer("head")
    assert [type(la).__name__ for la in head.layers][1] == "GlobalAveragePooling2D"
    assert head.count_params() == 16 * 256 + 256 + 257  # pooled 16 channels, not 8 × 8 × 16 flattened
    assert result.metrics["accuracy"] >= 0.8 and result.config["pooling"] == "avg"
    cut = train(train_folder, model="tiny_test", strategy="frozen", runs_root=tmp_path / "runs", name="cut",
                layer="block1_pool", pooling="max", epochs=2, **FAST)
    assert cut.model.get_layer("tiny_cnn").output.shape[1:] == (16, 16, 8)
    assert [type(la).__name__ for la in cut.model.get_layer("head").layers][1] == "GlobalMaxPooling2D"
    with pytest.raises(TransferkitError, match=r"`layer` must be a layer.*Received: layer='block9_pool'.*block1_pool"):
        train(train_folder, model="tiny_test", layer="block9_pool", runs_root=tmp_path / "runs", **FAST)
    with pytest.raises(TransferkitError, match="`pooling` must be one of"):
        train(train_folder, model="tiny_test", pooling="mean", runs_root=tmp_path / "runs", **FAST)


def test_bad_training_options_are_named(train_folder, tmp_path):
    for options, message in ((dict(optimizer="adamm"), r"`optimizer` must be one of.*Did you mean 'adam'"),
                             (dict(learning_rate=0), "`learning_rate` must be a number above 0"),
                             (dict(dropout=1.5), "`dropout` must be a fraction"),
                             (dict(epochs=0), "`epochs` must be a positive integer"),
                             (dict(epoch=3), r"Unknown training option 'epoch'. Did you mean 'epochs'")):
        with pytest.raises(TransferkitError, match=message):
            train(train_folder, model="tiny_test", runs_root=tmp_path / "runs", **{**FAST, **options})


def test_test_time_augmentation_averages_flipped_views(train_folder, tmp_path):
    from transferkit.train.use import tta_views

    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    views = tta_views(x, "flips")
    assert len(views) == 4 and np.array_equal(views[3], x[:, ::-1, ::-1]) and len(tta_views(x, "hflip")) == 2
    d8 = tta_views(x, "dihedral")  # all 8 orientations of each square, each once
    assert len({v[0].tobytes() for v in d8}) == 8
    assert all(any(np.array_equal(v[0], np.rot90(x[0], k)) for v in d8) for k in range(4))
    result = train(train_folder, model="tiny_test", strategy="frozen", runs_root=tmp_path / "runs", epochs=2,
                   **FAST)
    folder = train_folder / "validation" / "checks"
    plain = np.array([r["probabilities"] for r in predict(result.run_dir, folder)[0]])
    flipped = np.array([r["probabilities"] for r in predict(result.run_dir, folder, tta="hflip")[0]])
    import keras

    model = keras.saving.load_model(result.run_dir / "model.keras")
    images = np.stack([tk.load_image(str(p), 32) for p in sorted(folder.iterdir())]).astype("float32")
    mirror = np.asarray(model(images[:, :, ::-1]))[:, 0]
    np.testing.assert_allclose(flipped[:, 1], (plain[:, 1] + mirror) / 2, rtol=1e-4, atol=1e-5)
    m = evaluate(result.run_dir, train_folder / "validation", tta="flips")
    assert m["tta"] == "flips" and m["n"] == 20
    with pytest.raises(TransferkitError, match="`tta` must be one of"):
        predict(result.run_dir, folder, tta="rotate")


def test_metrics_roc_auc_and_top_k_match_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from transferkit.train.metrics import classification_metrics, roc_auc

    rng = np.random.default_rng(0)
    for _ in range(5):  # scores with many ties
        scores, positive = rng.integers(0, 5, 60) / 4, rng.random(60) < 0.3
        assert roc_auc(scores, positive) == pytest.approx(sklearn_metrics.roc_auc_score(positive, scores))
    assert roc_auc(np.array([0.2, 0.4]), np.array([True, True])) is None  # one class only
    probs, labels = rng.dirichlet(np.ones(7), 200), rng.integers(0, 7, 200)
    m = classification_metrics(probs, labels, list("abcdefg"))
    assert m["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, probs, multi_class="ovr"))
    assert m["top_k_accuracy"] == {str(k): pytest.approx(sklearn_metrics.top_k_accuracy_score(labels, probs, k=k))
                                   for k in (3, 5)}
    binary = classification_metrics(np.array([[0.1], [0.7], [0.6], [0.9]]), np.array([0, 0, 1, 1]), ["a", "b"])
    assert binary["roc_auc"] == 0.75 and binary["top_k_accuracy"] == {}


@pytest.mark.slow
def test_predict_and_evaluate_take_a_csv_of_path_and_label(train_folder, tmp_path, cli):
    result = train(train_folder, model="tiny_test", strategy="features", runs_root=tmp_path / "runs", epochs=5,
                   **FAST)
    rows = [(f"validation/{c}/{p.name}", c) for c in ("checks", "stripes")
            for p in sorted((train_folder / "validation" / c).iterdir())]
    table = train_folder / "labels.csv"
    table.write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in rows[::-1]))  # any order
    from_folder = evaluate(result.run_dir, train_folder / "validation")
    from_csv = evaluate(result.run_dir, table, tmp_path / "eval")
    for key in ("accuracy", "loss", "roc_auc", "n"):
        assert from_csv[key] == pytest.approx(from_folder[key]), key
    assert from_csv["confusion"] == from_folder["confusion"]
    with open(tmp_path / "eval" / "predictions.csv") as f:
        assert [r["path"] for r in csv.DictReader(f)] == [p.split("/", 1)[1] for p, _ in rows[::-1]]
    preds, skipped = predict(result.run_dir, table)
    assert len(preds) == 20 and not skipped
    # unlabelled CSV: predict yes, evaluate says what is missing
    (train_folder / "paths.csv").write_text("path\n" + "".join(f"{p}\n" for p, _ in rows))
    assert len(predict(result.run_dir, train_folder / "paths.csv")[0]) == 20
    with pytest.raises(TransferkitError, match="no labels to evaluate against"):
        evaluate(result.run_dir, train_folder / "paths.csv")
    bad = {"no_path.csv": ("file,label\na.png,checks\n", "needs a header row with a `path` column"),
           "missing.csv": (f"path,label\n{rows[0][0]},checks\nnope.png,checks\n", r"line 3: the image 'nope.png'"),
           "twice.csv": (f"path,label\n{rows[0][0]},checks\n./{rows[0][0]},checks\n", "line 3: .* listed twice"),
           "unknown.csv": (f"path,label\n{rows[0][0]},cats\n", r"labels \['cats'\] are not classes"),
           "short.csv": (f"path,label\n{rows[0][0]}\n", "line 2: 1 fields, the header has 2")}
    for name, (text, message) in bad.items():
        (train_folder / name).write_text(text)
        with pytest.raises(TransferkitError, match=message):
            evaluate(result.run_dir, train_folder / name)
    r = cli("evaluate", result.run_dir, table)
    assert r.returncode == 0, r.stderr
    assert "ROC-AUC" in r.stdout and "n=20" in r.stdout


def test_random_rot90_turns_each_image_by_a_multiple_of_90_degrees(train_folder, tmp_path):
    from transferkit.train import Augmentation
    from transferkit.train.layers import RandomRot90

    x = np.arange(64 * 5 * 5 * 3, dtype="float32").reshape(64, 5, 5, 3)
    out = np.asarray(RandomRot90(seed=1)(x, training=True))
    turns = [next(k for k in range(4) if np.array_equal(o, np.rot90(i, k))) for i, o in zip(x, out)]
    assert set(turns) == {0, 1, 2, 3} and max(np.bincount(turns)) < 32  # every turn, none dominating
    assert np.array_equal(np.asarray(RandomRot90(seed=1)(x)), x)  # inference: unchanged
    result = train(train_folder, model="tiny_test", strategy="frozen", runs_root=tmp_path / "runs", epochs=2,
                   augmentation=Augmentation(rotation=0, shift=0, shear=0, zoom=0, vertical_flip=True, rot90=True),
                   **FAST)
    assert result.config["augmentation"]["rot90"] is True
    assert "aug_rot90" not in [layer.name for layer in result.model.layers]  # model.keras has no augmentation


def test_cosine_schedule_follows_the_epoch_number(train_folder, tmp_path):
    import keras

    from transferkit.train.strategies import cosine_schedule

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    callback = cosine_schedule(0.1, 10)
    callback.set_model(model)
    rates = []
    for epoch in (0, 5, 9):  # a resumed fit starts at its initial epoch: the curve continues there
        callback.on_epoch_begin(epoch)
        rates.append(float(np.asarray(model.optimizer.learning_rate)))
    assert rates == pytest.approx([0.1, 0.05, 0.1 * (1 + np.cos(0.9 * np.pi)) / 2], rel=1e-5)
    result = train(train_folder, model="tiny_test", strategy="finetune", schedule="cosine", epochs=2,
                   finetune_epochs=2, runs_root=tmp_path / "runs", **FAST)
    assert result.config["schedule"] == "cosine"
    with open(result.run_dir / "history.csv") as f:  # the schedule adds no column to the appended history
        rows = list(csv.reader(f))
    assert len(rows) == 5 and all(len(r) == len(rows[0]) for r in rows)
    with pytest.raises(TransferkitError, match=r"`schedule` must be one of \['constant', 'cosine', 'onecycle'\]"):
        train(train_folder, model="tiny_test", schedule="cosin", runs_root=tmp_path / "runs", **FAST)


@pytest.mark.slow
def test_mixup_blends_batches_reproducibly_and_label_smoothing_trains(tmp_path):
    from transferkit.train.data import BatchMix, array_dataset, mixup, targets

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)).astype("float32"), targets(np.arange(8) % 3, 3, onehot=True)
    mx, my = mixup(x, y, 0.4, np.random.default_rng(5))
    assert np.allclose(my.sum(axis=1), 1) and not np.allclose(my, y)  # mixed, still distributions over classes
    assert not np.allclose(mx, x) and mx.dtype == x.dtype
    a = array_dataset(x, y, batch_size=4, shuffle=True, seed=1, mix=BatchMix(mixup=0.4))
    b = array_dataset(x, y, batch_size=4, shuffle=True, seed=1, mix=BatchMix(mixup=0.4), epoch=0)
    assert np.array_equal(a[1][0], b[1][0])  # a function of (seed, epoch, batch): a resumed run mixes the same
    assert not np.array_equal(a[1][0], array_dataset(x, y, batch_size=4, shuffle=True, seed=1)[1][0])
    data = make_split_folder(tmp_path / "data", {"train": 10, "validation": 4}, ["a", "b", "c"])
    for strategy in ("features", "frozen"):
        r = train(data, model="tiny_test", weights="none", strategy=strategy, epochs=6, batch_size=6,
                  label_smoothing=0.1, mixup=0.3, learning_rate=1e-2, precision="float32", augment=False,
                  runs_root=tmp_path / "runs", name=strategy)
        assert r.config["label_smoothing"] == 0.1 and r.config["mixup"] == 0.3
        assert r.metrics["accuracy"] >= 0.75, (strategy, r.metrics["accuracy"])
    with pytest.raises(TransferkitError, match="`mixup` must be"):
        train(data, model="tiny_test", weights="none", mixup=-1, runs_root=tmp_path / "runs")


def test_cutmix_pastes_a_box_weighted_by_its_area_and_trains_in_bfloat16(tmp_path):
    from transferkit.train.data import BatchMix, cutmix, targets

    n, h, w = 6, 20, 30
    x = np.stack([np.full((h, w, 3), i, dtype="float32") for i in range(n)])  # image i is all i: boxes show
    y = targets(np.arange(n) % 3, 3, onehot=True)
    for seed in range(20):
        mx, my = cutmix(x, y, 1.0, np.random.default_rng(seed))
        for i in range(n):
            values = np.unique(mx[i])
            pasted = float(np.mean(mx[i, ..., 0] != i))  # the fraction of the image taken from another
            assert len(values) <= 2 and np.isclose(mx[i].min(), min(values))
            if pasted:
                j = int(values[values != i][0])
                assert np.allclose(my[i], (1 - pasted) * y[i] + pasted * y[j], atol=1e-6), (seed, i)
            assert np.isclose(my[i].sum(), 1)
    with pytest.raises(TransferkitError, match=r"CutMix needs a batch of images.*Received: shape \(6, 4\)"):
        cutmix(np.zeros((6, 4), "float32"), y, 1.0, np.random.default_rng(0))
    both = BatchMix(mixup=0.4, cutmix=1.0)
    kinds = set()
    for seed in range(20):  # with both, each batch takes one: a cut batch keeps whole pixel values
        mx, _ = both(x, y, np.random.default_rng(seed))
        kinds.add(bool(np.all(np.isin(mx, x))))
    assert kinds == {True, False}
    assert not BatchMix() and BatchMix(cutmix=1.0) and not BatchMix(cutmix=1.0).without_cutmix()

    data = make_split_folder(tmp_path / "data", {"train": 12, "validation": 6}, ["a", "b", "c"])
    r = train(data, model="tiny_test", weights="none", strategy="frozen", epochs=8, batch_size=6, cutmix=1.0,
              learning_rate=1e-2, optimizer="adam", precision="bfloat16", augment=False, runs_root=tmp_path / "runs",
              name="cut")
    assert r.config["cutmix"] == 1.0 and r.config["precision"] == "bfloat16"
    assert r.metrics["accuracy"] >= 0.66, r.metrics["accuracy"]
    with pytest.raises(TransferkitError, match=r"`cutmix` cuts boxes.*'features' strategy.*Received: cutmix=1.0"):
        train(data, model="tiny_test", weights="none", strategy="features", cutmix=1.0, runs_root=tmp_path / "runs")
    with pytest.raises(TransferkitError, match="`cutmix` must be"):
        train(data, model="tiny_test", weights="none", strategy="frozen", cutmix=-0.5, runs_root=tmp_path / "runs")


def test_one_cycle_warms_up_then_anneals_and_follows_the_step(tmp_path):
    from transferkit.train.strategies import one_cycle_rate

    assert one_cycle_rate(1e-3, 0.0) == pytest.approx(1e-3 / 25)
    assert one_cycle_rate(1e-3, 0.25) == pytest.approx(1e-3)
    assert one_cycle_rate(1e-3, 1.0) == pytest.approx(1e-3 / 1e5)
    rising = [one_cycle_rate(1.0, p) for p in np.linspace(0, 0.25, 6)]
    falling = [one_cycle_rate(1.0, p) for p in np.linspace(0.25, 1, 6)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)
    data = make_split_folder(tmp_path / "data", {"train": 10, "validation": 4}, ["a", "b"])
    r = train(data, model="tiny_test", weights="none", strategy="features", epochs=6, batch_size=4,
              schedule="onecycle", learning_rate=1e-2, precision="float32", runs_root=tmp_path / "runs")
    assert r.config["schedule"] == "onecycle" and r.metrics["accuracy"] >= 0.75


def test_discriminative_rates_scale_each_block_and_the_optimizer_applies_them():
    import keras

    from transferkit.backbones.build import build_model
    from transferkit.train.heads import make_optimizer
    from transferkit.train.model import block_rate_factors, unfreeze_top

    spec = tk.get_backbone("vgg16")
    base = build_model(spec, weights="none", input_size=32)
    unfrozen = unfreeze_top(base, spec, blocks=3)
    factors = block_rate_factors(base, spec, unfrozen, 100.0)
    by_layer = {path.split("/")[-2]: f for path, f in factors.items()}
    assert by_layer["block5_conv3"] == 1.0 and by_layer["block5_conv1"] == 1.0
    assert by_layer["block4_conv1"] == pytest.approx(0.1) and by_layer["block3_conv1"] == pytest.approx(0.01)
    assert "block2_conv1" not in by_layer and block_rate_factors(base, spec, unfrozen, 1.0) == {}
    # the optimizer trains each variable at rate x factor (SGD: the update is exactly rate x factor x gradient)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, name="low"),
                              keras.layers.Dense(1, use_bias=False, name="top")])
    for optimizer in ("sgd", "adam"):
        model.get_layer("low").kernel.assign(np.ones((2, 1)))
        model.get_layer("top").kernel.assign(np.ones((1, 1)))
        model.compile(make_optimizer(optimizer, 1.0 if optimizer == "sgd" else 0.1,
                                     {model.get_layer("low").kernel.path: 0.1}), "mse")
        model.train_on_batch(np.array([[1.0, 0.0]], "float32"), np.zeros((1, 1), "float32"))
        low, top = model.get_layer("low").kernel.numpy()[0, 0], model.get_layer("top").kernel.numpy()[0, 0]
        if optimizer == "sgd":  # gradient 2 for both: 1 - 2 x 0.1 and 1 - 2
            assert low == pytest.approx(0.8) and top == pytest.approx(-1.0)
        else:  # Adam's first step moves each weight by its rate: 0.01 and 0.1
            assert 1 - low == pytest.approx(0.01, rel=1e-3) and 1 - top == pytest.approx(0.1, rel=1e-3)


@pytest.mark.slow
def test_gradual_unfreezing_adds_a_block_per_stage(train_folder, tmp_path):
    result = train(train_folder, model="vgg16", input_size=32, strategy="finetune", epochs=1, finetune_epochs=4,
                   unfreeze_blocks=2, gradual=True, discriminative=10, runs_root=tmp_path / "runs", **FAST)
    stages = [s["stage"] for s in result.stages]
    assert len(stages) == 3 and "block5_conv1..block5_conv3" in stages[1] and "block4_conv1" in stages[2]
    assert "rate / 10" in stages[2] and "rate /" not in stages[1]  # one block: one rate
    assert [s["epochs"] for s in result.stages] == [1, 2, 2]
    with pytest.raises(TransferkitError, match="`gradual` unfreezes whole blocks"):
        train(train_folder, model="tiny_test", strategy="finetune", gradual=True, unfreeze_from="block2_conv1",
              runs_root=tmp_path / "runs", **FAST)
