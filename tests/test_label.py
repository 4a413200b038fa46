"""`transferkit label`: answers on disk before the next image, undo across restarts, the strategies, the simulation,
the page's API and keys, and the command's three modes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")

from conftest import HERE, chromium, free_port, listening, make_image  # noqa: E402
from transferkit.label import AnswerStore, LabelSession, journal_path, simulate, write_simulation  # noqa: E402
from transferkit.label.select import STRATEGIES, Pool, reduce_features  # noqa: E402


def read_csv(path):
    with open(path, newline="") as f:
        return [(r["path"], r["label"]) for r in csv.DictReader(f)]


def blobs(n_per=40, centres=4, dim=16, seed=0, spread=0.6):
    """Clustered features: `centres` well-separated blobs, one class each."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (centres, dim))
    x = np.concatenate([means[c] + spread * rng.normal(size=(n_per, dim)) for c in range(centres)])
    return x.astype(np.float32), np.repeat(np.arange(centres), n_per)


# --- the answers -------------------------------------------------------------------------------------------------

def test_every_answer_is_on_disk_and_undo_works_across_restarts(tmp_path):
    out = tmp_path / "labels.csv"
    store = AnswerStore(out, given={"/pool/cat/0.jpg": "cat"}, classes=["cat", "dog"], keep=lambda p: True)
    store.answer("/pool/1.jpg", "dog")
    assert read_csv(out) == [("/pool/cat/0.jpg", "cat"), ("/pool/1.jpg", "dog")]  # before the call returned
    store.skip("/pool/2.jpg")
    store.answer("/pool/3.jpg", "bird")  # a new class comes with its first answer
    again = AnswerStore(out, given={"/pool/cat/0.jpg": "cat"}, classes=["cat", "dog"], keep=lambda p: True)
    assert again.labels() == store.labels() and again.skipped == {"/pool/2.jpg"}
    assert again.classes == ["cat", "dog", "bird"] and again.counts() == {"cat": 1, "dog": 1, "bird": 1}
    assert again.undo() == "/pool/3.jpg" and again.undo() == "/pool/2.jpg"  # the skip, given before the restart
    assert read_csv(out) == [("/pool/cat/0.jpg", "cat"), ("/pool/1.jpg", "dog")] and not again.skipped
    third = AnswerStore(out, given={"/pool/cat/0.jpg": "cat"}, keep=lambda p: True)
    assert third.labels() == again.labels() and third.undo() == "/pool/1.jpg" and third.undo() is None
    third.answer("/pool/cat/0.jpg", "dog")  # a given label corrected: the answer wins, undo restores it
    assert dict(read_csv(out)) == {"/pool/cat/0.jpg": "dog"}
    third.undo()
    assert dict(read_csv(out)) == {"/pool/cat/0.jpg": "cat"}


def test_a_journal_cut_by_a_kill_loses_only_the_unconfirmed_answer(tmp_path):
    out = tmp_path / "labels.csv"
    store = AnswerStore(out, keep=lambda p: True)
    store.answer("/a.jpg", "x")
    store.answer("/b.jpg", "y")
    with open(journal_path(out), "a") as f:
        f.write('{"do": "label", "path": "/c.jp')  # killed mid-line
    assert AnswerStore(out).labels() == {"/a.jpg": "x", "/b.jpg": "y"}
    assert read_csv(out) == [("/a.jpg", "x"), ("/b.jpg", "y")]  # written before the cut line
    lines = journal_path(out).read_text().splitlines()
    journal_path(out).write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    from transferkit.errors import TransferkitError

    with pytest.raises(TransferkitError, match="line 2, is damaged"):
        AnswerStore(out)


def test_an_image_removed_from_the_pool_leaves_the_csv_until_it_returns(tmp_path):
    out, image = tmp_path / "labels.csv", tmp_path / "a.png"
    image.write_bytes(b"not read")
    AnswerStore(out).answer(str(image), "x")
    assert read_csv(out) == [(str(image), "x")]
    image.unlink()
    AnswerStore(out).write_csv()
    assert read_csv(out) == []  # train would refuse a path that is gone
    image.write_bytes(b"back")
    AnswerStore(out).write_csv()
    assert read_csv(out) == [(str(image), "x")]


# --- the strategies ----------------------------------------------------------------------------------------------

def test_typical_covers_every_cluster_and_margin_picks_the_boundary():
    x, y = blobs(centres=5)
    reduced = reduce_features(x)
    rng = np.random.default_rng(0)
    none = np.zeros(len(x), bool)
    chosen = STRATEGIES["typical"](Pool(reduced, none, None, 0), 5, rng)
    assert sorted(y[chosen].tolist()) == [0, 1, 2, 3, 4]  # one typical image from each blob
    probs = np.tile([0.9, 0.1], (len(x), 1))
    probs[[7, 70]] = [0.52, 0.48]  # the two the model is least sure of
    assert sorted(STRATEGIES["margin"](Pool(reduced, none, probs, 2), 2, rng).tolist()) == [7, 70]
    labelled = none.copy()
    labelled[7] = True
    assert 7 not in STRATEGIES["margin"](Pool(reduced, labelled, probs, 2), 2, rng)  # never asked twice
    diverse = STRATEGIES["diverse-margin"](Pool(reduced, none, np.random.default_rng(1).dirichlet([1, 1], len(x)), 2),
                                           5, rng)
    assert len(set(diverse.tolist())) == 5


def test_typical_then_diverse_turns_from_typical_to_uncertain_batches_and_auto_is_margin():
    from transferkit.label.select import TYPICAL_PER_CLASS

    x, y = blobs(centres=3)
    reduced = reduce_features(x)
    probs = np.random.default_rng(2).dirichlet([1, 1, 1], len(x))
    few = np.zeros(len(x), bool)
    few[:3] = True

    def pick(name, labelled):
        return STRATEGIES[name](Pool(reduced, labelled, probs, 3), 3, np.random.default_rng(0)).tolist()

    assert pick("typical-then-diverse", few) == pick("typical", few)
    many = np.zeros(len(x), bool)
    many[: 3 * TYPICAL_PER_CLASS] = True
    assert pick("typical-then-diverse", many) == pick("diverse-margin", many)
    assert pick("auto", many) == pick("margin", many)  # the measured default (docs/label.md)


def test_the_default_strategy_needs_fewer_labels_than_random_on_digits(tmp_path):
    """The measurement behind `auto`, small: scikit-learn's digits (pixels as features), 2 seeds."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    sim = simulate(digits.data, digits.target, [str(i) for i in range(10)], budget=150, seeds=2, batch=10)
    auto, random = sim.labels_to_reach("auto"), sim.labels_to_reach("random")
    assert auto is not None and (random is None or auto < random), sim.summary
    assert sim.summary["labels_to_reach"] == {"random": random, "auto": auto}
    written = write_simulation(sim, tmp_path / "sim")
    rows = list(csv.DictReader(open(tmp_path / "sim" / "curve.csv")))
    assert len(rows) == 2 * 2 * 15 and {r["strategy"] for r in rows} == {"random", "auto"}
    assert (tmp_path / "sim" / "curve.png") in written and (tmp_path / "sim" / "curve.png").stat().st_size > 5000
    assert json.loads((tmp_path / "sim" / "summary.json").read_text())["labels_to_reach"]["auto"] == auto


# --- the session and the page's API ------------------------------------------------------------------------------

@pytest.fixture
def pool(tmp_path):
    """Twelve real image files and clustered features for them (two classes, 6 each)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = tmp_path / "pool" / f"{i:02d}.png"
        make_image(path, rng, size=(40, 30))
        paths.append(str(path))
    x, y = blobs(n_per=6, centres=2, dim=8)
    return paths, x, y


def test_the_session_suggests_after_two_classes_and_exports_with_an_estimate(tmp_path, pool):
    paths, x, y = pool
    session = LabelSession(paths, x, tmp_path / "labels.csv", classes=["a", "b"], batch=4)
    assert session.probs is None and all(i["suggestion"] is None for i in session.next_batch())
    for row in [0, 1, 2, 6, 7, 8]:
        session.answer(row, "ab"[y[row]])
    session.refit()
    status = session.status()
    assert status["counts"] == {"a": 3, "b": 3} and status["cv_accuracy"] == 1.0 and status["unanswered"] == 6
    batch = session.next_batch()
    assert len(batch) == 4 and not {0, 1, 2, 6, 7, 8} & {i["index"] for i in batch}
    assert all(i["suggestion"] == "ab"[y[i["index"]]] for i in batch)  # the blobs are easy
    summary = session.export_predicted(tmp_path / "pred.csv", 0.5)
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert summary["written"] == len(rows) == 6 and summary["estimated_accuracy"] == 1.0
    assert all(r["label"] == "ab"[y[paths.index(r["path"])]] for r in rows)
    assert json.loads((tmp_path / "pred.json").read_text())["estimated_from"] == 6


def test_the_page_api_answers_undoes_and_refuses_bad_input_with_one_line(tmp_path, pool):
    from fastapi.testclient import TestClient

    from transferkit.label.app import create_label_app

    paths, x, y = pool
    session = LabelSession(paths, x, tmp_path / "labels.csv", classes=["a", "b"], batch=3)
    app = create_label_app(session, retrain_every=2)
    client = TestClient(app)
    items = client.get("/api/next").json()["items"]
    assert len(items) == 3
    for item in items[:2]:
        status = client.post("/api/answer", json={"index": item["index"], "label": "ab"[y[item["index"]]]}).json()
    assert status["labelled"] == 2 and len(read_csv(tmp_path / "labels.csv")) == 2
    client.post("/api/skip", json={"index": items[2]["index"]})
    undone = client.post("/api/undo").json()
    assert undone["item"]["index"] == items[2]["index"] and undone["status"]["skipped"] == 0
    assert client.post("/api/class", json={"name": "c"}).json()["classes"] == ["a", "b", "c"]
    image = client.get(f"/image/{items[0]['index']}")
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/label.js">' in page.text and client.get("/label.js").status_code == 200
    assert client.get("/health").json()["status"] == "ok"
    bad = {"no such row": client.post("/api/answer", json={"index": 99, "label": "a"}),
           "slash in a class": client.post("/api/class", json={"name": "a/b"}),
           "not JSON": client.post("/api/answer", content=b"{", headers={"content-type": "application/json"}),
           "index=abc": client.get("/image/abc"), "exclude=x": client.get("/api/next?exclude=x")}
    for what, r in bad.items():
        assert 400 <= r.status_code < 500 and list(r.json()) == ["error"], (what, r.status_code, r.text)
    assert "0 … 11" in bad["no such row"].json()["error"]
    app.state.retrainer.wait()


def test_the_page_with_its_keys_in_a_real_browser(tmp_path, pool):
    """Playwright drives the system Chromium: 1 and 2 answer, s skips, z undoes, Enter accepts the suggestion."""
    browser_path = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    from transferkit.label.app import create_label_app

    paths, x, y = pool
    session = LabelSession(paths, x, tmp_path / "labels.csv", classes=["a", "b"], batch=4)
    errors = []
    with listening(create_label_app(session, retrain_every=1)) as base:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")

            def until(check, what):  # polled from here: the page's CSP forbids evaluating strings in it
                deadline = time.time() + 30
                while not check():
                    assert time.time() < deadline, f"timed out waiting for {what}"
                    time.sleep(0.05)

            until(lambda: page.inner_text("#path"), "the first image")

            def shown_row():
                return paths.index(page.inner_text("#path"))

            def press(key, labelled):
                page.keyboard.press(key)
                until(lambda: page.inner_text("#summary").startswith(f"{labelled} "), f"{labelled} labelled")

            answered = []
            for _ in range(4):  # two of each class by their keys (1: a, 2: b)
                row = shown_row()
                answered.append(row)
                press("1" if y[row] == 0 else "2", len(answered))
            until(lambda: "suggests" in page.inner_text("#suggestion"), "a suggestion")
            row = shown_row()
            page.keyboard.press("s")
            until(lambda: page.inner_text("#path") != paths[row], "the next image")
            page.keyboard.press("z")  # the skip taken back: the image shows again
            until(lambda: page.inner_text("#path") == paths[row], "the skipped image again")
            until(lambda: "suggests" in page.inner_text("#suggestion"), "a suggestion")
            press("Enter", 5)
            page.screenshot(path=str(tmp_path / "label.png"))
            counts = page.inner_text("#counts")
            browser.close()
    assert not errors, errors
    labels = dict(read_csv(tmp_path / "labels.csv"))
    assert len(labels) == 5 and all(labels[paths[r]] == "ab"[y[r]] for r in answered)
    assert labels[paths[row]] == "ab"[y[row]]  # Enter took the model's suggestion, right on these blobs
    assert "a" in counts and (tmp_path / "label.png").stat().st_size > 10_000


# --- the command -------------------------------------------------------------------------------------------------

TINY = ["--model", "tiny_test", "--weights", "none", "--precision", "bfloat16", "-q"]


def make_pool(root, n=10):
    """pool/cat/*, pool/dog/* (given: 3 each) and pool/unlabelled/* (n each of two kinds)."""
    rng = np.random.default_rng(3)
    for c, name in enumerate(["cat", "dog"]):
        for i in range(3):
            make_image(root / name / f"{i}.png", rng, size=(32, 32), kind="pattern", cls=c)
        for i in range(n):
            make_image(root / "unlabelled" / f"{name}{i}.png", rng, size=(32, 32), kind="pattern", cls=c)
    return root


def test_export_predicted_and_simulate_from_the_command(tmp_path, cli):
    pool_dir = make_pool(tmp_path / "pool")
    out = tmp_path / "labels.csv"
    r = cli("label", pool_dir, "-o", out, *TINY, "--export-predicted", tmp_path / "pred.csv", "--min-confidence",
            "0")
    assert r.returncode == 0, r.stderr
    assert "Wrote" in r.stdout and "20 unlabelled" in r.stdout, r.stdout
    assert (tmp_path / "labels-features" / "manifest.json").is_file()  # cached beside the CSV
    assert sorted(label for _, label in read_csv(out)) == ["cat"] * 3 + ["dog"] * 3  # the sub-folders' labels
    predicted = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert len(predicted) == 20 and all("unlabelled" in row["path"] for row in predicted)
    from transferkit.audit.run import labelled_images

    index = labelled_images(out)[0]  # what audit, train and train --folds read from a path,label CSV
    assert len(index) == 6 and index.class_names == ["cat", "dog"]
    make_image(pool_dir / "unlabelled" / "new.png", np.random.default_rng(9), size=(32, 32))  # the pool grows
    truth = tmp_path / "truth.csv"
    truth.write_text("path,label\n" + "".join(
        f"{p},{'cat' if 'cat' in p.name else 'dog'}\n" for p in sorted(pool_dir.rglob("*.png")) if p.name != "new.png"))
    r = cli("label", pool_dir, "-o", out, *TINY, "--simulate", truth, "--budget", "12", "--seeds", "2", "--batch",
            "4", "--simulation-output", tmp_path / "sim")
    assert r.returncode == 0, r.stderr
    assert "Labels to reach 95%" in r.stdout and "random" in r.stdout and "auto" in r.stdout, r.stdout
    manifest = json.loads((tmp_path / "labels-features" / "manifest.json").read_text())
    assert manifest["updates"][-1]["added"] == 1  # extracted once, then only the new image
    rows = list(csv.DictReader(open(tmp_path / "sim" / "curve.csv")))
    assert {r["strategy"] for r in rows} == {"random", "auto"} and {r["seed"] for r in rows} == {"0", "1"}


def test_bad_options_and_a_taken_port_are_one_line_before_anything_is_written(tmp_path, cli):
    import socket

    pool_dir = make_pool(tmp_path / "pool", n=2)
    bad_csv = tmp_path / "given.csv"
    bad_csv.write_text("file,class\na.png,cat\n")
    for args, expect in [(["--strategy", "best"], "invalid choice"), (["--batch", "0"], "from 1"),
                         (["--min-confidence", "2"], "a probability in"),
                         (["--simulate", tmp_path / "none.csv"], "does not exist"),
                         (["--labels", bad_csv], "needs a header row `path,label`")]:
        r = cli("label", pool_dir, "-o", tmp_path / "labels.csv", *TINY, *args)
        assert r.returncode in (1, 2) and expect in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        r = cli("label", pool_dir, "-o", tmp_path / "labels.csv", *TINY, "--port", held.getsockname()[1])
    assert r.returncode == 4 and "Cannot serve on 127.0.0.1" in r.stderr, r.stderr
    assert not (tmp_path / "labels.csv").exists() and not (tmp_path / "labels-features").exists()


@pytest.mark.slow
def test_killed_and_restarted_the_page_continues_where_it_stopped(tmp_path):
    """The command as a process: answer three images over HTTP, SIGKILL it, start it again: the three are there,
    and undo takes back the last one given before the kill."""
    import httpx

    pool_dir = make_pool(tmp_path / "pool", n=4)
    out = tmp_path / "labels.csv"
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def start():
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), "label", str(pool_dir), "-o", str(out),
                                 *TINY, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            try:
                return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), \
                    httpx.get(f"http://127.0.0.1:{port}/health").raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.2)
        proc.kill()
        pytest.fail("the labelling page did not start: " + proc.stderr.read()[-2000:])

    proc, client, _ = start()
    try:
        items = client.get("/api/next").json()["items"]
        for item, label in zip(items[:3], ["cat", "dog", "cat"]):
            client.post("/api/answer", json={"index": item["index"], "label": label}).raise_for_status()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(read_csv(out)) == 6 + 3
    proc, client, _ = start()
    try:
        assert client.get("/api/status").json()["labelled"] == 9
        assert client.post("/api/undo").json()["item"]["index"] == items[2]["index"]
        assert len(read_csv(out)) == 8
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
