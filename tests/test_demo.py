"""The README's demo runs offline end to end and shows real results."""

import pytest

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out

pytest.importorskip("skimage", reason="the demo needs transferkit[demo]")
pytest.importorskip("sklearn", reason="the demo needs transferkit[demo]")


def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    from transferkit.demo import run_demo

    result = run_demo(tmp_path / "demo", epochs=15, quiet=True)
    out = tmp_path / "demo"
    assert result["photo_features"].matrix.shape == (8, 1280)
    top3 = {p: [name for _, name, _ in best] for p, best in result["top3"].items()}
    assert "espresso" in top3["coffee.png"] and "missile" in top3["rocket.jpg"]
    assert result["val_accuracy"] > 0.85
    for name in ("digits_curves.png", "filters_stem_conv.png", "feature_maps/block2b_add.png", "digits_head.keras",
                 "gradcam_chelsea.png", "digits_embedding.png"):
        assert (out / name).stat().st_size > 1000, name
    groups = sorted(sorted(p for p, _ in g) for g in result["duplicates"].groups)
    assert groups == [["chelsea.png", "chelsea_crop.png", "chelsea_mirrored.png"],
                      ["coffee.png", "coffee_brighter.png", "coffee_q40.jpg"],
                      ["motorcycle_left.png", "motorcycle_right.png"]]  # a stereo pair: the same scene, shifted
    assert result["explore"].stat().st_size > 10000
    from PIL import Image
    import numpy as np

    arr = np.asarray(Image.open(out / "digits_curves.png"))
    assert arr.std() > 5  # not a blank picture
