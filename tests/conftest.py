"""Shared fixtures: the tiny test backbone, generated image folders, a CLI runner. No network anywhere."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import tiny_backbone  # noqa: E402

tiny_backbone.register()


def make_image(path: Path, rng, size=(48, 40), kind="noise", cls=0):
    """Write one image; `kind="pattern"` draws a class-dependent pattern that a CNN can learn."""
    from PIL import Image

    w, h = size
    if kind == "pattern":
        yy, xx = np.mgrid[0:h, 0:w]
        base = ((xx // 6 + yy // 6) % 2) if cls == 0 else ((yy // 6) % 2)
        arr = (base[..., None] * np.array([200, 60 + 120 * cls, 40]) + rng.integers(0, 40, (h, w, 3))).astype(
            np.uint8)
    else:
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_split_folder(root: Path, counts: dict[str, int], classes: list[str], size=(32, 32), seed: int = 0) -> Path:
    """`root/<split>/<class>/NNN.png` with `counts[split]` learnable pattern images per class."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for c, cls in enumerate(classes):
            for i in range(n):
                make_image(root / split / cls / f"{i:03d}.png", rng, size=size, kind="pattern", cls=c)
    return root


def load_example(name: str):
    """Import `examples/<name>.py` as a module (the examples are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, HERE.parent / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize_batchnorm(model, seed: int = 0) -> int:
    """Give every BatchNormalization layer random statistics (weights=None leaves them at 0/1); returns the count."""
    import keras

    rng = np.random.default_rng(seed)
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            count += randomize_batchnorm(layer, seed + count + 1)
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.2, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 3, c).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, c).astype("float32"))
            count += 1
    return count


@pytest.fixture
def image_folder(tmp_path):
    """A labelled folder: 2 classes × 6 JPEG/PNG images of different sizes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, cls in enumerate(["cats", "dogs"]):
        for i in range(6):
            ext = "jpg" if i % 2 == 0 else "png"
            make_image(root / cls / f"{i:02d}.{ext}", rng, size=(40 + 8 * i, 36 + 4 * c), kind="pattern", cls=c)
    return root


@pytest.fixture
def flat_folder(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "flat"
    for i in range(5):
        make_image(root / f"img{i}.png", rng)
    return root


def chromium():
    """The system's Chromium (scripts/test.sh installs Debian's); the test is skipped, saying why, without one."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium); scripts/test.sh installs it")
    return found


def dump_dom(url: str, *, budget_ms: int = 3000) -> subprocess.CompletedProcess:
    """Load `url` in headless Chromium and let its scripts run for `budget_ms` of virtual time: stdout is the DOM
    then, stderr the browser's log (script errors show as "Uncaught")."""
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0", "--dump-dom",
                           url], capture_output=True, text=True, timeout=120)


def run_cli(*args, env=None, timeout=300):
    """Run `transferkit` (with the tiny backbone registered) in a fresh process."""
    full_env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(HERE / "tk_cli.py"), *map(str, args)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def run_cli_here(*args, env=None, timeout=300):
    """Run `transferkit` in this process, as `run_cli` does in a fresh one: the same exit status, stdout and stderr,
    without a new process's start-up (5 s of importing TensorFlow). For what a command prints, writes and returns;
    a test of how a process starts, is killed or is interrupted uses `run_cli`. `env` given: a fresh process."""
    import contextlib
    import io

    from transferkit.cli import main

    if env:
        return run_cli(*args, env=env, timeout=timeout)
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's usage errors and --help
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess([sys.executable, "-m", "transferkit", *argv], status, out.getvalue(),
                                       err.getvalue())


@pytest.fixture
def cli():
    """The CLI runner for tests of a command's output and exit status (in this process; see `run_cli_here`)."""
    return run_cli_here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def listening(app):
    """The app served by uvicorn in a thread on a free loopback port; yields the base URL; stops it after."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
