"""Every page template escapes what it is given: a hostile file, class or run name shows as text."""

import re

import pytest

from transferkit.templates import render_template

EVIL = '<x-evil a="1">\'&</script><!--'
METRICS = {"accuracy": 0.5, "loss": 0.25, "n": 2, "stages": [{"stage": EVIL, "epochs": 1, "best_epoch": 1,
                                                               "seconds": 2.0}],
           "per_class": {EVIL: {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 2}},
           "accuracy_mean": 0.5, "accuracy_std": 0.1, "loss_mean": 0.2, "loss_std": 0.1}
PAGES = {
    "report.html": dict(title=EVIL, metrics=METRICS, class_names=[EVIL], settings_rows=[(EVIL, EVIL)],
                        mistakes=[{"picture": "", "path": EVIL, "true": EVIL, "predicted": EVIL, "probability": 0.9,
                                   "loss": 1.0}], curves="", confusion="", embedding=""),
    "repeated.html": dict(title=EVIL, metrics=METRICS, entries=[{"run": EVIL, "accuracy": 0.5, "loss": 0.2, "n": 2,
                                                                 "stages": []}],
                          kind="folds", what=EVIL, curves=[(EVIL, "")], settings_rows=[(EVIL, EVIL)]),
    "audit.html": dict(title=EVIL, facts=EVIL, issues={"label": EVIL}, counts={"label": 1}, sections=[
        {"kind": "label", "why": EVIL, "total": 1, "cards": [
            {"path": EVIL, "split": EVIL, "issue": "label", "score": 0.5, "given": EVIL, "suggested": EVIL,
             "other": EVIL, "paired": True, "thumb": "", "other_thumb": ""}]}]),
    "explore.html": dict(title=EVIL, data={"title": EVIL, "paths": [EVIL]}),
    "serve.html": dict(info={"classes": [EVIL], "predict": True, "similar": False}),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_a_hostile_name_is_text_on_every_page(name):
    page = render_template(name, **PAGES[name])
    assert "<x-evil" not in page and "</script><!--" not in page
    if name not in ("serve.html",):
        assert "&lt;x-evil" in page or "\\u003cx-evil" in page  # it is there, as text
    assert len(re.findall(r"<script\b", page)) == len(re.findall(r"</script>", page))  # no block was ended early


def test_a_missing_value_is_an_error_not_an_empty_page():
    with pytest.raises(Exception, match="undefined"):
        render_template("report.html", title="t")
