"""The command line: help with examples, one-line errors, exit status, and the commands' output."""

import pytest

from transferkit.cli import main


@pytest.mark.parametrize("command", ["models", "layers", "extract", "predict-imagenet", "train", "predict",
                                     "evaluate", "demo"])
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
