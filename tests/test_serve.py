"""`transferkit serve`: answers equal `predict`, bad uploads get 4xx JSON, never a 5xx, micro-batching under a
bounded load from 16 clients on loopback, a full queue answers 503, and the upload page renders."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import transferkit as tk  # noqa: E402
from conftest import chromium, dump_dom, free_port, listening, make_split_folder  # noqa: E402
from transferkit.serve import Limits, create_app  # noqa: E402
from transferkit.serve.batcher import MicroBatcher, QueueFull  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A trained tiny run, a feature set of its train images, and the app over both."""
    root = tmp_path_factory.mktemp("serve")
    data = make_split_folder(root / "data", {"train": 10, "validation": 4}, ["checks", "stripes"], size=(40, 40))
    run = tk.train(data, model="tiny_test", weights="none", epochs=3, runs_root=root / "runs", name="r",
                   precision="bfloat16").run_dir
    features = root / "features"
    tk.extract(data / "train", features, model="tiny_test", weights="none", pooling="avg", precision="bfloat16")
    return {"data": data, "run": run, "features": features, "root": root}


def client_of(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def bad_uploads(good: bytes) -> list[tuple[str, bytes]]:
    """Random bytes, an empty file, a truncated JPEG, a truncated PNG and text named .jpg."""
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.open(io.BytesIO(good)).convert("RGB").save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    return [("random.jpg", rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()), ("empty.png", b""),
            ("truncated.jpg", jpeg[: len(jpeg) // 2]), ("truncated.png", good[: len(good) // 3]),
            ("notes.jpg", b"just some text, not a picture\n" * 20)]


@pytest.fixture(scope="module")
def client(served):
    """One app over the run and the feature set, shared by the endpoint tests below."""
    with client_of(create_app(served["run"], features=served["features"])) as c:
        yield c


def upload(path, name=None, kind="image/png"):
    return {"file": (name or path.name, path.read_bytes(), kind)}


def test_predict_answers_equal_predict(served, client):
    image = served["data"] / "validation" / "checks" / "001.png"
    expected, _ = tk.predict(served["run"], image)
    r = client.post("/predict", files=upload(image))
    assert r.status_code == 200, r.text
    body = r.json()
    probs = list(body["predictions"][0]["probabilities"].values())
    np.testing.assert_allclose(probs, expected[0]["probabilities"], atol=1e-3)
    assert body["predictions"][0]["top"][0]["class"] == expected[0]["predicted"]
    assert body["transferkit_version"] == tk.__version__


@pytest.mark.parametrize("case", range(5), ids=["random", "empty", "truncated-jpeg", "truncated-png", "text"])
def test_a_bad_upload_gets_a_4xx_naming_the_file(served, client, case):
    image = served["data"] / "validation" / "checks" / "001.png"
    name, content = bad_uploads(image.read_bytes())[case]
    r = client.post("/predict", files={"file": (name, content, "image/jpeg")})
    assert 400 <= r.status_code < 500 and name in r.json()["error"], (name, r.status_code, r.text)


def test_predict_without_a_file_is_422(client):
    assert client.post("/predict").status_code == 422  # no file field


def test_gradcam_explains_the_predicted_class_and_refuses_an_unknown_one(served, client):
    image = served["data"] / "validation" / "checks" / "001.png"
    expected, _ = tk.predict(served["run"], image)
    r = client.post("/gradcam", files=upload(image))
    assert r.status_code == 200 and r.json()["class"] == expected[0]["predicted"], r.text
    assert r.json()["overlay"].startswith("data:image/png;base64,")
    assert client.post("/gradcam?class_name=nope", files={"file": ("a.png", image.read_bytes())}).status_code == 422


def test_similar_finds_a_member_first_and_serves_only_its_files(served, client):
    member = served["data"] / "train" / "stripes" / "003.png"
    r = client.post("/similar?k=3", files=upload(member, "x.png"))
    assert r.status_code == 200 and r.json()["neighbours"][0]["path"] == "stripes/003.png", r.text
    assert r.json()["neighbours"][0]["similarity"] > 0.999
    assert client.get(r.json()["neighbours"][0]["image"]).content == member.read_bytes()
    assert client.get("/image/9999").status_code == 404 and client.get("/image/-1").status_code == 404
    assert 400 <= client.get("/image/..%2F..%2Fetc%2Fpasswd").status_code < 500


def test_embed_health_and_the_page(served, client):
    member = served["data"] / "train" / "stripes" / "003.png"
    r = client.post("/embed", files=upload(member, "x.png"))
    assert r.status_code == 200 and r.json()["dim"] == len(r.json()["vector"])
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["features"] == 20 and health["classifier"]["classes"] == [
        "checks", "stripes"]
    # /docs loads Swagger from a CDN: off unless asked (--docs)
    assert 'type="file"' in client.get("/").text and client.get("/docs").status_code == 404


def test_docs_are_served_when_asked(served):
    with client_of(create_app(served["run"], docs=True)) as client:
        assert client.get("/docs").status_code == 200 and "/predict" in client.get("/openapi.json").json()["paths"]


def test_batcher_groups_requests_and_refuses_past_its_queue():
    calls = []

    def slow_double(items):
        calls.append(len(items))
        time.sleep(0.05)
        return [2 * x for x in items]

    async def scenario():
        b = MicroBatcher(slow_double, max_batch=8, max_wait_ms=20, max_queue=64)
        await b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(24)))
        await b.stop()
        small = MicroBatcher(slow_double, max_batch=1, max_wait_ms=0, max_queue=2)
        await small.start()
        outcomes = await asyncio.gather(*(small.submit(i) for i in range(10)), return_exceptions=True)
        await small.stop()
        return results, outcomes

    results, outcomes = asyncio.run(scenario())
    assert results == [2 * i for i in range(24)] and max(calls[:3]) == 8 and len(calls) >= 3
    assert any(isinstance(o, QueueFull) for o in outcomes) and any(o == 0 for o in outcomes)


def test_a_full_queue_answers_503_with_retry_after(served):
    image = (served["data"] / "validation" / "checks" / "000.png").read_bytes()
    app = create_app(served["run"], limits=Limits(max_batch=1, max_wait_ms=0, max_queue=1))
    with client_of(app) as client, ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: client.post("/predict", files={"file": ("a.png", image, "image/png")}),
                                  range(24)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]


@pytest.mark.slow
def test_bounded_load_from_16_clients_no_5xx_and_answers_equal_predict(served):
    import httpx

    images = sorted((served["data"] / "validation").rglob("*.png"))
    expected = {r["path"]: r["probabilities"] for r in tk.predict(served["run"], images)[0]}
    app = create_app(served["run"], limits=Limits(max_batch=32, max_wait_ms=5))
    bad = bad_uploads(images[0].read_bytes())
    jobs = [("good", images[i % len(images)]) for i in range(200)] + [("bad", bad[i % len(bad)]) for i in range(40)]
    np.random.default_rng(1).shuffle(jobs)

    def call(job):
        kind, what = job
        name, content = (what.name, what.read_bytes()) if kind == "good" else what
        with httpx.Client(base_url=base, timeout=60) as c:
            r = c.post("/predict", files={"file": (name, content, "image/png")})
        return kind, what, r.status_code, r.json()

    with listening(app) as base, ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, jobs))
        health = httpx.get(base + "/health", timeout=10).json()
    assert len(results) == 240
    for kind, what, status, body in results:
        if kind == "good":
            assert status == 200, body
            rel = str(what.relative_to(images[0].parents[1]))
            probs = list(body["predictions"][0]["probabilities"].values())
            np.testing.assert_allclose(probs, expected[rel], atol=1e-3)
        else:
            assert 400 <= status < 500, (what[0], status, body)
    assert health["status"] == "ok" and health["batches"]["predict"] < 200  # requests were batched together


def test_upload_page_renders_in_a_real_browser(served):
    chromium()
    with listening(create_app(served["run"], features=served["features"])) as base:
        r = dump_dom(base + "/")
    assert 'type="file"' in r.stdout and "Drop an image here" in r.stdout, r.stderr[-2000:]


def test_a_browser_uploads_on_the_page_and_sees_the_prediction(served):
    """Playwright drives the system Chromium: choose a file on the page, see the classes and the neighbours."""
    browser_path = chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    image = served["data"] / "validation" / "stripes" / "002.png"
    expected, _ = tk.predict(served["run"], image)
    with listening(create_app(served["run"], features=served["features"])) as base:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(base + "/")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#prediction", timeout=60_000)
            page.wait_for_selector("#neighbours figure img", timeout=60_000)
            page.wait_for_selector("#gradcam", timeout=60_000)
            cam_width = page.eval_on_selector("#gradcam", "e => e.complete && e.naturalWidth")
            first_class = page.inner_text("#prediction tr:first-child td:first-child")
            shown = page.eval_on_selector_all("#neighbours img", "els => els.map(e => e.complete && e.naturalWidth)")
            browser.close()
    assert first_class == expected[0]["predicted"]
    assert len(shown) == 8 and all(shown)  # every neighbour's thumbnail loaded from /image/ROW
    from transferkit.train.use import load_run

    size = load_run(served["run"])[1]["input"].size
    assert cam_width == 2 * size  # the input beside its Grad-CAM overlay


@pytest.mark.slow
def test_the_command_serves_on_loopback_and_sigterm_drains_requests_in_flight(served):
    import os
    import signal
    import sys

    import httpx

    from conftest import HERE

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # a batch waits 1.5 s for more images: the requests are inside the server when SIGTERM comes
    proc = subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), "serve", str(served["run"]), "--port", str(port),
                             "--max-wait-ms", "1500", "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        image = (served["data"] / "validation" / "checks" / "000.png").read_bytes()

        def call(_):
            return httpx.post(base + "/predict", files={"file": ("a.png", image, "image/png")}, timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            time.sleep(0.7)  # the requests are in flight: waiting in the batcher
            proc.send_signal(signal.SIGTERM)
            codes = [f.result() for f in futures]
        assert codes == [200] * 8  # every request in flight was answered
        # uvicorn exits after the drain, re-raising the signal it caught (the conventional status of SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=2)


@pytest.mark.slow
def test_ray_engine_serves_the_same_answers_from_replicas(served, monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    import os

    from conftest import HERE

    monkeypatch.setenv("PYTHONPATH", str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    images = sorted((served["data"] / "validation").rglob("*.png"))[:6]
    expected = {r["path"]: r["probabilities"] for r in tk.predict(served["run"], images)[0]}
    app = create_app(served["run"], engine="ray", replicas=2)
    with client_of(app) as client:
        for image in images:
            r = client.post("/predict", files={"file": (image.name, image.read_bytes(), "image/png")})
            assert r.status_code == 200, r.text
            probs = list(r.json()["predictions"][0]["probabilities"].values())
            rel = str(image.relative_to(images[0].parents[1]))
            np.testing.assert_allclose(probs, expected[rel], atol=1e-3)
        r = client.post("/predict", files={"file": ("bad.jpg", b"not an image", "image/jpeg")})
        assert r.status_code == 415
        assert client.post("/gradcam", files={"file": ("a.png", images[0].read_bytes())}).status_code == 200
    assert not ray.is_initialized()  # the app stopped the Ray instance it started


def test_framework_made_errors_have_the_documented_shape(served):
    """A missing `file` field, `k=abc`, a body that is not multipart, an unknown path: `{"error": "..."}` like
    every other 4xx, naming the field and never echoing the input back."""
    app = create_app(served["run"], features=served["features"])
    image = (served["data"] / "validation" / "checks" / "000.png").read_bytes()
    with client_of(app) as client:
        cases = {
            "missing file": client.post("/predict", data={"other": "x"}),
            "k=abc": client.post("/similar?k=abc", files={"file": ("a.png", image, "image/png")}),
            "broken multipart": client.post("/predict", content=b"--xx\r\nnot a part" + b"A" * 100_000,
                                            headers={"content-type": "multipart/form-data; boundary=xx"}),
            "unknown path": client.get("/nope"),
            "wrong method": client.get("/predict"),
        }
    for name, r in cases.items():
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
        body = r.json()
        assert list(body) == ["error"] and isinstance(body["error"], str), (name, body)
        assert len(r.content) < 1000, name  # the 100 kB body is not echoed
    assert "'file'" in cases["missing file"].json()["error"] and "curl -F" in cases["missing file"].json()["error"]
    assert "'k'" in cases["k=abc"].json()["error"]


def test_the_openapi_page_documents_every_answer_and_errors_map_by_type(served):
    """/openapi.json (with docs on) names a response schema for every endpoint and the error shape for its 4xx;
    a decode failure's status comes from its type (too many pixels 413, not an image 415, corrupt 400)."""
    from transferkit.data.decode import DecodeError, NotAnImage, TooManyPixels
    from transferkit.serve.state import DECODE_ANSWERS

    app = create_app(served["run"], features=served["features"], docs=True)
    with client_of(app) as client:
        spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for path, method, answer in [("/predict", "post", "PredictAnswer"), ("/gradcam", "post", "GradcamAnswer"),
                                 ("/embed", "post", "EmbedAnswer"), ("/similar", "post", "SimilarAnswer"),
                                 ("/health", "get", "HealthAnswer")]:
        responses = spec["paths"][path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/" + answer), path
        assert answer in schemas
        if path != "/health":
            for status in ("400", "413", "415", "503"):
                assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorAnswer")
    assert schemas["ClassProbability"]["properties"].keys() == {"class", "probability"}

    def status(exc):
        return next(answer for kind, answer in DECODE_ANSWERS if isinstance(exc, kind)).status

    assert [status(TooManyPixels("x", "r")), status(NotAnImage("x", "r")), status(DecodeError("x", "r"))] == \
        [413, 415, 400]
