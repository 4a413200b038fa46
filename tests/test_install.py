"""The README's install lines work: each runs in a fresh virtual environment, then the CLI runs from elsewhere."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out

ROOT = Path(__file__).resolve().parents[1]
URL = "<URL of this repository>"


def readme_install_lines() -> list[str]:
    """The `pip install` lines of the README's Install section, comments removed."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("pip install")]


def test_readme_names_the_clone_and_the_url_installs():
    lines = readme_install_lines()
    assert 'pip install ".[tf,lite]"' in lines
    assert any(line.startswith('pip install "transferkit[') and "git+" in line for line in lines)
    for line in lines:  # every extra a line names exists
        for extras in re.findall(r"\[([a-z,-]+)\]", line):
            for extra in extras.split(","):
                assert f"\n{extra} = [" in (ROOT / "pyproject.toml").read_text(), (line, extra)


def test_readme_install_lines_in_a_fresh_venv(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the repository")
    # a copy of the committed tree, so building leaves no files in the checkout
    clone = tmp_path / "transferkit"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    for name in ("README.md", "pyproject.toml"):  # the working tree's versions, which this test checks
        shutil.copy(ROOT / name, clone / name)
    shutil.rmtree(clone / "src")
    shutil.copytree(ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True, timeout=60)
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit",
                    "--allow-empty", "-qam", "working tree"], cwd=clone, check=True, timeout=60)  # what the git URL line installs
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # dependencies (and pip) come from this test environment: no network, no multi-GB downloads
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    lines = readme_install_lines()
    assert lines
    for line in lines:
        args = line.split(None, 2)[2]
        if URL in args:
            args = args.replace(URL, "file://localhost" + clone.as_posix())  # pip wants a host in git URLs
        command = f"{python} -m pip install --quiet --no-build-isolation --no-index --disable-pip-version-check {args}"
        r = subprocess.run(command, shell=True, cwd=clone, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        where = subprocess.run([str(python), "-c", "import transferkit; print(transferkit.__file__)"],
                               cwd=tmp_path, capture_output=True, text=True)
        assert where.returncode == 0 and where.stdout.startswith(str(venv)), (line, where.stdout, where.stderr)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    r = subprocess.run([str(venv / "bin" / "transferkit"), "models"], cwd=tmp_path, capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "efficientnet_lite0" in r.stdout and "vgg16" in r.stdout
    # the HTML templates are package data: they travel with a real (non-editable) install
    r = subprocess.run([str(python), "-c", "from transferkit.templates import render_template as r; "
                        "print(len(r('explore.html', title='t', data={})) > 1000, "
                        "len(r('repeated.html', title='t', metrics=dict.fromkeys(['accuracy_mean', 'accuracy_std', "
                        "'loss_mean', 'loss_std'], 0), entries=[], kind='folds', what='', curves=[], "
                        "settings_rows=[])) > 500)"],
                       cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert r.stdout.split() == ["True", "True"], r.stderr[-2000:]
