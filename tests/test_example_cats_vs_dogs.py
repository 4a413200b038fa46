"""The cats-vs-dogs example's data path and table, on a small generated folder of the same layout."""

import zipfile

import numpy as np
import pytest

from conftest import load_example, make_image

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out


def test_zip_layout_is_prepared_and_trained(tmp_path, capsys):
    ex = load_example("cats_vs_dogs")
    rng = np.random.default_rng(0)
    src = tmp_path / "src" / "cats_and_dogs_filtered"
    for split, n in (("train", 12), ("validation", 6)):
        for c, cls in enumerate(["cats", "dogs"]):
            for i in range(n):
                make_image(src / split / cls / f"{cls}.{i}.jpg", rng, size=(40, 40), kind="pattern", cls=c)
    archive = tmp_path / "cats_and_dogs_filtered.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in src.rglob("*.jpg"):
            zf.write(f, f.relative_to(src.parent))
    data = ex.prepare(archive, tmp_path / "cache")
    assert (data / "train" / "cats").is_dir()
    rows = ex.run_table(data, model="tiny_test", input_size=32, epochs=2, finetune_epochs=1, weights="none",
                        runs=tmp_path / "runs", precision="float32", learning_rate=1e-3, optimizer="adam")
    assert [r["strategy"] for r in rows] == ["features", "frozen", "finetune"]
    ex.print_table(rows)
    assert "fine-tune block5" in capsys.readouterr().out


def test_offline_download_says_so(tmp_path, monkeypatch):
    import urllib.request

    import pytest

    ex = load_example("cats_vs_dogs")

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(SystemExit, match="Could not download"):
        ex.prepare(None, tmp_path / "cache")
