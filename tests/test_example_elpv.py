"""The ELPV example's data preparation (the paper's stratified split) on a tiny fake wheel; no download."""

import csv
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import load_example


def fake_wheel(path: Path, per_stratum: int = 8) -> Path:
    """An elpv-dataset-shaped wheel: labels.csv plus greyscale cells whose brightness follows the label."""
    rng = np.random.default_rng(0)
    lines, n = [], 0
    with zipfile.ZipFile(path, "w") as zf:
        for probability in ("0.0", "0.3333333333333333", "0.6666666666666666", "1.0"):
            for kind in ("mono", "poly"):
                for _ in range(per_stratum):
                    n += 1
                    name = f"images/cell{n:04d}.png"
                    level = int(40 + 180 * float(probability))
                    pixels = np.clip(rng.normal(level, 10, (24, 24)), 0, 255).astype(np.uint8)
                    buf = Path(path.parent / "tmp.png")
                    Image.fromarray(pixels, "L").save(buf)
                    zf.write(buf, f"elpv_dataset/data/{name}")
                    lines.append(f"{name}  {probability}  {kind}")
        zf.writestr("elpv_dataset/data/labels.csv", "\n".join(lines) + "\n")
    return path


def test_paper_split_is_stratified_seeded_and_complete(tmp_path):
    ex = load_example("elpv")
    source = ex.Source(fake_wheel(tmp_path / "elpv_dataset-1.0.0-py3-none-any.whl"))
    rows = source.labels()
    assert len(rows) == 64
    held = ex.paper_split(rows, seed=0)
    assert held.sum() == 16  # 25 % of each of the 8 strata (8 cells each)
    per_stratum = Counter((round(p, 3), k) for (_, p, k), h in zip(rows, held) if h)
    assert set(per_stratum.values()) == {2}
    np.testing.assert_array_equal(held, ex.paper_split(rows, seed=0))
    assert not np.array_equal(held, ex.paper_split(rows, seed=1))


def test_prepare_writes_both_tasks_as_class_folders(tmp_path):
    ex = load_example("elpv")
    source = ex.Source(fake_wheel(tmp_path / "w.whl"))
    four = ex.prepare(source, tmp_path / "data", "4class")
    binary = ex.prepare(source, tmp_path / "data", "binary")
    assert sorted(p.name for p in (four / "train").iterdir()) == ["0_p000", "1_p033", "2_p067", "3_p100"]
    assert sorted(p.name for p in (binary / "validation").iterdir()) == ["0_functional", "1_defective"]
    for root in (four, binary):
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
        assert len(files) == 64 and len({Path(f).name for f in files}) == 64  # every cell once
        with open(root / "split.csv") as f:
            table = list(csv.DictReader(f))
        assert sorted(r["path"] for r in table) == files
    # the two tasks use the same split: a cell is in validation for both or for neither
    val4 = {p.name for p in (four / "validation").rglob("*.png")}
    assert val4 == {p.name for p in (binary / "validation").rglob("*.png")} and len(val4) == 16
    defective = {p.name for p in (binary / "train" / "1_defective").iterdir()}
    assert defective == {p.name for c in ("2_p067", "3_p100") for p in (four / "train" / c).iterdir()}


def test_table_runs_on_the_prepared_folder(tmp_path, capsys):
    ex = load_example("elpv")
    data = ex.prepare(ex.Source(fake_wheel(tmp_path / "w.whl")), tmp_path / "data", "binary")
    rows = ex.run_table(data, task="binary", strategies=["linear", "features"], model="tiny_test", input_size=None,
                        runs=tmp_path / "runs", quick=True, weights="none", precision="float32")
    assert [r["recipe"] for r in rows] == ["linear", "features"]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    ex.print_table(rows)
    out = capsys.readouterr().out
    assert "88.4%" in out and "linear (tiny_test)" in out


def test_finetune_recipe_starts_from_the_features_run(tmp_path):
    ex = load_example("elpv")
    data = ex.prepare(ex.Source(fake_wheel(tmp_path / "w.whl")), tmp_path / "data", "binary")
    rows = ex.run_table(data, task="binary", strategies=["finetune"], model="tiny_test", input_size=None,
                        runs=tmp_path / "runs", quick=True, weights="none", precision="float32", unfreeze_blocks=1)
    assert [r["recipe"] for r in rows] == ["features", "finetune", "finetune + TTA dihedral"]
    config = json.loads((tmp_path / "runs" / "binary-finetune-tiny_test" / "config.json").read_text())
    assert config["init_from"].endswith("binary-features-tiny_test") and config["crop"] == "none"
    assert config["augmentation"]["rot90"] and config["augmentation"]["vertical_flip"]


@pytest.mark.slow
def test_table_with_seeds_gives_mean_and_std(tmp_path, capsys):
    ex = load_example("elpv")
    data = ex.prepare(ex.Source(fake_wheel(tmp_path / "w.whl")), tmp_path / "data", "binary")
    rows = ex.run_table(data, task="binary", strategies=["finetune"], model="tiny_test", input_size=None,
                        runs=tmp_path / "runs", quick=True, seeds=2, weights="none", precision="bfloat16",
                        unfreeze_blocks=1)
    assert [r["recipe"] for r in rows] == ["features", "finetune", "finetune + TTA dihedral"]
    metrics = json.loads((tmp_path / "runs" / "binary-finetune-tiny_test" / "metrics.json").read_text())
    assert [e["seed"] for e in metrics["seeds"]] == [0, 1] and rows[1]["std"] == metrics["accuracy_std"]
    config = json.loads((tmp_path / "runs" / "binary-finetune-tiny_test" / "seed-1" / "config.json").read_text())
    assert config["init_from"].endswith("binary-features-tiny_test/seed-0")
    ex.print_table(rows)
    assert " ± " in capsys.readouterr().out
