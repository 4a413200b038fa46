"""The command line: help with examples, one-line errors, exit status, and the commands' output."""

import argparse

import pytest

from transferkit.cli import _parser, main


def _commands() -> list[str]:
    """Every command of the command table, as argparse knows them (so a new command is covered by itself)."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_the_command_table_is_what_the_readme_lists():
    assert len(_commands()) >= 15 and {"extract", "train", "similar", "viz", "export"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"transferkit {command}" in out


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "vgg16" in out and "resnet101_v2" in out and "ResNet101V2" in out


def test_layers_prints_table_and_totals(capsys):
    assert main(["layers", "tiny_test"]) == 0
    out = capsys.readouterr().out
    assert "block2_pool" in out and "Total params:" in out


def test_clean_one_line_error(cli, image_folder, tmp_path):
    r = cli("extract", image_folder, "-o", tmp_path / "o", "--model", "tiny_test", "--weights", "none",
            "--layer", "blok2_pool")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("transferkit: error:")]
    assert len(lines) == 1 and "'block2_pool'" in lines[0]


def test_debug_env_shows_traceback(cli, tmp_path):
    r = cli("extract", tmp_path / "missing", "-o", tmp_path / "o", env={"TRANSFERKIT_DEBUG": "1"})
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_extract_exit_status_3_when_images_skipped(cli, image_folder, tmp_path):
    (image_folder / "cats" / "zero.jpg").write_bytes(b"")
    r = cli("extract", image_folder, "-o", tmp_path / "o", "--model", "tiny_test", "--weights", "none", "-q")
    assert r.returncode == 3, r.stderr
    assert "skipped: cats/zero.jpg: not an image" in r.stderr
    assert "Wrote 12 rows (2 classes)" in r.stdout


def test_layers_at_another_size_does_not_offer_a_missing_default(capsys):
    assert main(["layers", "vgg16", "--input-size", "150"]) == 0
    out = capsys.readouterr().out
    assert "fc2" not in out.split("Default feature layer")[0]
    assert "Default feature layer: fc2, which needs the classifier at 224 px" in out
    assert "--layer block5_pool" in out
    assert main(["layers", "vgg16"]) == 0
    assert "Default feature layer: fc2;" in capsys.readouterr().out


@pytest.mark.slow
def test_extract_messages_count_in_words_and_join_paths_once(cli, flat_folder, tmp_path):
    (flat_folder / "notes.txt").write_text("not an image")
    (flat_folder / "broken.png").write_bytes(b"")
    r = cli("extract", flat_folder, "-o", f"{tmp_path / 'feats'}/", "--model", "tiny_test", "--weights", "none",
            "-q")
    assert r.returncode == 3, r.stderr
    assert "Ignored 1 file that is not an image by its extension: 'notes.txt'" in r.stderr
    assert f"all listed in {tmp_path / 'feats' / 'manifest.json'}" in r.stderr and "//" not in r.stderr + r.stdout
    assert "Wrote 5 rows (unlabelled)" in r.stdout and "Skipped 1 of 6 images" in r.stderr


@pytest.mark.slow
def test_the_library_is_as_quiet_as_the_cli(tmp_path):
    """TensorFlow's C++ start-up lines (absl, cpu_feature_guard) stay hidden also when KERAS_BACKEND is set."""
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    code = ("import transferkit, keras, warnings\n"
            "keras.ops.convert_to_numpy(keras.ops.ones((2, 2)) @ keras.ops.ones((2, 2)))\n"
            "warnings.warn('a real warning still shows')\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "a real warning still shows" in r.stderr
    noise = [line for line in r.stderr.splitlines() if "absl" in line or "cpu_feature_guard" in line
             or "oneDNN" in line]
    assert not noise, noise
    # the same code without transferkit is noisy on this TensorFlow: the test can fail
    r = subprocess.run([sys.executable, "-c", code.replace("import transferkit, ", "import ")], capture_output=True,
                       text=True, env=env, timeout=300)
    assert any("cpu_feature_guard" in line or "oneDNN" in line for line in r.stderr.splitlines()), r.stderr


def test_stage_lines_count_epochs_in_the_right_number():
    from transferkit.cli.train import describe_epochs

    assert describe_epochs({"epochs": 1, "first_epoch": 2, "best_epoch": 2}) == "1 epoch (run epoch 2), kept epoch 2"
    assert describe_epochs({"epochs": 3, "first_epoch": 4, "best_epoch": 5}) == \
        "3 epochs (run epochs 4-6), kept epoch 5"
    assert describe_epochs({"epochs": 0, "first_epoch": 1, "best_epoch": None}).startswith("no epochs")


def test_every_option_default_agrees_with_the_library():
    """A command's option defaults are the library's (signature defaults, `TrainConfig`, `Limits`): walked over
    every command that has a library entry point. `quiet` differs on purpose: the command line shows progress."""
    import argparse
    import dataclasses
    import inspect

    from transferkit.audit import audit
    from transferkit.cli import _parser
    from transferkit.extract.runner import extract
    from transferkit.search.api import duplicates, similar
    from transferkit.search.explore import explore
    from transferkit.serve.app import Limits, serve
    from transferkit.train.config import TrainConfig
    from transferkit.train.lr_find import lr_find

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    rename = {"output": "out", "runs": "runs_root", "timeout": "timeout_s", "read_timeout": "read_timeout_s",
              "keep_alive": "keep_alive_s"}
    library = {"extract": extract, "audit": audit, "lr-find": lr_find, "similar": similar, "duplicates": duplicates,
               "explore": explore, "serve": serve}
    checked, differ = 0, []
    for name, fn in library.items():
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}
        if name == "serve":
            defaults.update({f.name: f.default for f in dataclasses.fields(Limits)})
        for action in commands[name]._actions:
            dest = rename.get(action.dest, action.dest)
            if dest in defaults and dest != "quiet":
                checked += 1
                if defaults[dest] != action.default:
                    differ.append((name, action.dest, action.default, defaults[dest]))
    config = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    for action in commands["train"]._actions:
        if action.dest in config and action.dest != "quiet":
            checked += 1
            if config[action.dest] != action.default:
                differ.append(("train", action.dest, action.default, config[action.dest]))
    assert checked >= 60 and differ == [], (checked, differ)
