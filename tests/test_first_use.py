"""What a new user trips over first: odd files, exit codes that say why, Ctrl-C, a port in use, missing extras,
argument errors that answer before Keras loads."""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import transferkit as tk
from conftest import HERE, make_image, run_cli, run_cli_here
from transferkit.cli import resume_command
from transferkit.errors import SkippedFileWarning

TINY = ["--model", "tiny_test", "--weights", "none", "--precision", "bfloat16"]


def split_folder(root, truncated=True):
    """train/ validation/ with 2 classes of pattern images; one truncated JPEG in train/a."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("validation", 3)):
        for c, cls in enumerate(["a", "b"]):
            for i in range(n):
                make_image(root / split / cls / f"{i}.png", rng, kind="pattern", cls=c)
    if truncated:
        make_image(root / "train" / "a" / "cut.jpg", rng, size=(64, 64))
        data = (root / "train" / "a" / "cut.jpg").read_bytes()
        (root / "train" / "a" / "cut.jpg").write_bytes(data[: len(data) // 3])
    return root


@pytest.mark.slow
def test_a_named_pipe_is_skipped_unopened_and_a_folder_named_like_an_image_is_a_folder(tmp_path, image_folder):
    os.mkfifo(image_folder / "cats" / "fifo.jpg")
    (image_folder / "dogs" / "folder.png").mkdir()  # its images are rows, as in any folder
    (image_folder / "dogs" / "05.png").rename(image_folder / "dogs" / "folder.png" / "inside.png")
    r = run_cli("extract", image_folder, "-o", tmp_path / "f", *TINY, timeout=120)  # hung forever before
    assert r.returncode == 3, r.stderr
    assert "skipped: cats/fifo.jpg: not a regular file (a named pipe)" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("transferkit: skipped 1 file")
    fs = tk.load_features(tmp_path / "f")
    assert len(fs) == 12 and [s["path"] for s in fs.skipped] == ["cats/fifo.jpg"]
    assert "dogs/folder.png/inside.png" in fs.paths
    # listed in a CSV, a folder is skipped with its reason, never opened as a file
    (tmp_path / "list.csv").write_text(f"path\n{image_folder / 'dogs' / 'folder.png'}\n{image_folder / 'cats/00.jpg'}\n")
    r = run_cli("extract", tmp_path / "list.csv", "-o", tmp_path / "g", *TINY, timeout=120)
    assert r.returncode == 3 and "folder.png: not a regular file (a folder)" in r.stderr, r.stderr


def test_a_pipe_is_never_opened_for_reading(tmp_path):
    from transferkit.data.decode import DecodeError, load_image

    os.mkfifo(tmp_path / "p.jpg")
    started = time.monotonic()
    with pytest.raises(DecodeError, match="named pipe"):
        load_image(str(tmp_path / "p.jpg"), 32)
    assert time.monotonic() - started < 30  # a blocking open would never return


@pytest.mark.parametrize("command", ["train", pytest.param("lr-find", marks=pytest.mark.slow),
                                     pytest.param("audit", marks=pytest.mark.slow)])
def test_every_command_names_the_files_it_skipped(tmp_path, command):
    data = split_folder(tmp_path / "data")
    extra = {"train": ["--epochs", "1", "--runs", tmp_path / "runs"],
             "lr-find": ["--steps", "5", "--runs", tmp_path / "runs"],
             "audit": ["-o", tmp_path / "audit", "--folds", "2", "--runs", tmp_path / "runs"]}[command]
    r = run_cli_here(command, data, *TINY, *extra, "-q")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, r.stderr
    assert sum(line.startswith("skipped: ") and line.split(": ")[1].endswith("train/a/cut.jpg")
               for line in lines) == 1, r.stderr
    assert lines[-1] == "transferkit: skipped 1 file (named above); the exit status is 3"


@pytest.mark.slow
def test_evaluate_and_the_python_api_name_skipped_files_too(tmp_path):
    data = split_folder(tmp_path / "data")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tk.train(data, model="tiny_test", weights="none", precision="bfloat16", epochs=1,
                          runs_root=tmp_path / "runs")
    skipped = [w.message for w in caught if issubclass(w.category, SkippedFileWarning)]
    assert [(m.path, "corrupt" in m.reason) for m in skipped] == [(str((data / "train/a/cut.jpg").resolve()), True)]
    r = run_cli_here("evaluate", result.run_dir, data / "train")
    assert r.returncode == 3 and "skipped: a/cut.jpg: corrupt" in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("transferkit: skipped 1 file")


def test_resume_command_keeps_the_arguments_and_replaces_what_resumes():
    argv = ["train", "data", "--epochs", "5", "--overwrite", "--name=old", "--runs", "r"]
    assert resume_command(argv, ["--name", "old", "--runs", "r", "--resume"]) == (
        "transferkit train data --epochs 5 --name old --runs r --resume")
    assert resume_command(["extract", "x", "-o", "f", "--overwrite"], None) == "transferkit extract x -o f"


@pytest.mark.slow
def test_ctrl_c_during_train_prints_the_command_that_resumes_it(tmp_path):
    data = split_folder(tmp_path / "data", truncated=False)
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = ["train", str(data), *TINY, "--epochs", "400", "--runs", str(tmp_path / "runs"), "-q"]
    # the child takes Ctrl-C as in a terminal, even when the suite runs where SIGINT is ignored (a background job)
    proc = subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not list((tmp_path / "runs").glob("*/.stage*")) and not list((tmp_path / "runs").glob("*/history*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.5)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("transferkit: interrupted; resume with: transferkit train "), err
    resume = line.split("resume with: ", 1)[1].split()[1:]
    assert "--resume" in resume and "--name" in resume
    r = run_cli_here(*[a if a != "400" else "2" for a in resume])  # the same run, continued (and shortened)
    assert "settings differ" in r.stderr  # --epochs changed: refused, not silently restarted
    r = run_cli(*resume, timeout=600)
    assert r.returncode == 0, r.stderr


def test_serve_on_a_port_in_use_is_one_line_and_exit_4_before_anything_loads(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        code = ("import sys; from transferkit.cli import main; status = main(sys.argv[1:]); "
                "print('keras loaded' if 'keras' in sys.modules else 'keras not loaded'); sys.exit(status)")
        r = subprocess.run([sys.executable, "-c", code, "serve", str(tmp_path / "run"), "--port", str(port)],
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stderr
    assert r.stderr.strip() == (f"transferkit: error: Cannot serve on 127.0.0.1:{port}: the address is already in "
                                "use (another server on that port?). Pick another --port, or stop what uses it.")
    assert r.stdout.strip() == "keras not loaded"


BLOCK = "import sys; sys.modules.update({m: None for m in sys.argv[1].split(',')}); del sys.argv[1]; "
MAIN = "from transferkit.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("blocked, args, extra", [
    ("uvicorn", ["serve", "runs/x"], "serve"),
    ("cleanlab", ["audit", "data", "-o", "{tmp}/audit"], "audit"),
    ("matplotlib", ["train", "data", "--runs", "{tmp}/runs"], "viz"),
    ("nncf", ["extract", "data", "-o", "{tmp}/f", "--precision", "int8"], "openvino"),
])
def test_a_missing_extra_names_its_install_line_before_any_file_is_written(tmp_path, blocked, args, extra):
    args = [a.format(tmp=tmp_path) for a in args]
    r = subprocess.run([sys.executable, "-c", BLOCK + MAIN, blocked, *args], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert f'pip install ".[{extra}]"' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("args", [
    ["duplicates", "f", "--threshold", "2"], ["explore", "f", "--threshold", "-3"],
    ["extract", "x", "-o", "y", "--crop", "1.5"], ["extract", "x", "-o", "y", "--batch-size", "0"],
    ["train", "x", "--epochs", "abc"], ["train", "x", "--learning-rate", "-1"], ["train", "x", "--dropout", "1.5"],
    ["train", "x", "--crop", "big"], ["audit", "x", "--folds", "1"], ["similar", "f", "q", "-k", "0"],
    ["serve", "r", "--port", "70000"], ["serve", "r", "--timeout", "0"], ["lr-find", "x", "--validation-split", "1"],
    ["viz", "filters", "vgg16", "-n", "0"], ["predict-imagenet", "x", "--top", "0"],
])
def test_bad_values_are_refused_before_keras_loads(args):
    code = ("import sys; from transferkit.cli import main\ntry:\n    status = main(sys.argv[1:])\nexcept SystemExit as e:"
            "\n    status = e.code\nprint('keras' in sys.modules, 'tensorflow' in sys.modules); sys.exit(status)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode in (1, 2), r.stderr
    assert r.stdout.strip() == "False False", (args, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert "error" in last and ("Received" in last or "invalid" in last), last


@pytest.mark.slow
def test_predict_has_quiet_and_similar_answers_in_the_order_asked(tmp_path, image_folder):
    from transferkit.search import similar

    tk.extract(image_folder, tmp_path / "f", model="tiny_test", weights="none", precision="float32",
               layers="block2_pool", pooling="flatten")
    order = ["dogs/05.png", str(image_folder / "cats" / "02.jpg"), "cats/00.jpg"]
    matches, _ = similar(tmp_path / "f", order, k=1)
    assert [m.query.rsplit("/", 2)[-2] + "/" + m.query.rsplit("/", 1)[-1] for m in matches] == [
        "dogs/05.png", "cats/02.jpg", "cats/00.jpg"]
    result = tk.train(image_folder, model="tiny_test", weights="none", epochs=1, validation_split=0.3,
                      runs_root=tmp_path / "runs", precision="bfloat16")
    r = run_cli("predict", result.run_dir, image_folder / "cats", "--quiet", "-o", tmp_path / "p.csv")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run_cli("predict", result.run_dir, image_folder / "cats", "-o", tmp_path / "p.csv")
    assert "predict" in r.stderr  # the progress bar


@pytest.mark.slow
def test_update_prints_its_counts_once(tmp_path, image_folder):
    run_cli_here("extract", image_folder, "-o", tmp_path / "f", *TINY, "-q")
    (image_folder / "cats" / "00.jpg").unlink()
    r = run_cli_here("extract", image_folder, "-o", tmp_path / "f", *TINY, "-q", "--update")
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).count("removed 1") == 1, r.stdout


def test_a_missing_csv_row_names_its_path_once(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\nnope.jpg,a\n")
    with pytest.raises(tk.TransferkitError) as err:
        tk.extract(tmp_path / "list.csv", tmp_path / "f", model="tiny_test", weights="none")
    assert str(err.value).count("nope.jpg") == 1 and "line 2" in str(err.value)


@pytest.mark.slow
def test_links_that_leave_the_folder_are_skipped_by_extract_and_refused_by_the_server(tmp_path, image_folder):
    """One rule for extract, update, explore and serve: a link to a file (or a folder) outside the folder is not
    a row — a link swapped later could point anywhere, and the server would not show it."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (image_folder / "cats" / "00.jpg").rename(outside / "00.jpg")
    os.symlink(outside / "00.jpg", image_folder / "cats" / "link.jpg")
    os.symlink(outside, image_folder / "dogs" / "linked_folder")
    os.symlink(image_folder / "cats" / "02.jpg", image_folder / "dogs" / "inside_link.jpg")  # inside: a row
    r = run_cli_here("extract", image_folder, "-o", tmp_path / "f", *TINY)
    assert r.returncode == 3, r.stderr
    assert "skipped: cats/link.jpg: a link to a file outside the folder" in r.stderr
    assert "skipped: dogs/linked_folder/00.jpg: a link to a file outside the folder" in r.stderr
    fs = tk.load_features(tmp_path / "f")
    assert "dogs/inside_link.jpg" in fs.paths and not any("link" in p and "inside" not in p for p in fs.paths)
    (image_folder / "cats" / "02.jpg").touch()
    r = run_cli_here("extract", image_folder, "-o", tmp_path / "f", *TINY, "--update")
    assert "cats/link.jpg" not in tk.load_features(tmp_path / "f").paths
