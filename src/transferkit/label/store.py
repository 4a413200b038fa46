"""The answers given while labelling: an append-only journal (label, skip, undo, new class), and the `path,label`
CSV rewritten whole after every answer — a kill or a restart continues from both, undo included."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from ..errors import TransferkitError
from ..files import write_text_atomic


def read_label_csv(path, option: str) -> dict[str, str]:
    """Absolute path -> class of a `path,label` CSV (relative paths from the CSV's folder; rows without a label
    left out); `option` names where the CSV came from in an error (`--labels`, `--simulate`)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TransferkitError(f"Cannot read {option} {str(path)!r}: {exc}") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise TransferkitError(f"{option} {str(path)!r} needs a header row `path,label` and one row per image. "
                               f"Received: header={sorted(rows[0]) if rows else []}")
    labels = {}
    for row in rows:
        given, label = Path((row["path"] or "").strip()), (row["label"] or "").strip()
        if label and str(given) != ".":
            labels[str((given if given.is_absolute() else path.parent / given).resolve())] = label
    return labels


def journal_path(csv_path) -> Path:
    """Where the journal of `labels.csv` lives: `labels.journal.jsonl` beside it."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + ".journal.jsonl")


class AnswerStore:
    """The labels of a pool: those given before labelling began (class sub-folders, a CSV) and the answers since.

    Every answer is appended to the journal (flushed and fsynced) and the CSV is then rewritten atomically, both
    before the call returns: what the page showed as answered is on disk. The CSV holds `path,label` rows (absolute
    paths), given labels first, then answers in the order given — what `train`, `audit` and `train --folds` read.

    Args:
        csv_path: the labels CSV to write (`labels.csv`); its journal is `journal_path(csv_path)`.
        given: absolute path -> class name, labels that came with the pool.
        classes: class names known before any answer (new ones come with answers or `add_class`).
        keep: which labelled paths the CSV lists (default: those that exist); an answer for an image removed since
            stays in the journal and returns to the CSV with the image.

    Example:
    >>> store = AnswerStore(tmp / "labels.csv", given={"/pool/cat/1.jpg": "cat"}, classes=["cat", "dog"])  # doctest: +SKIP
    >>> store.answer("/pool/2.jpg", "dog"); store.undo()  # doctest: +SKIP
    '/pool/2.jpg'
    """

    def __init__(self, csv_path, *, given: dict[str, str] | None = None, classes: list[str] | None = None,
                 keep=os.path.exists):
        self.csv_path = Path(csv_path)
        self.keep = keep
        self.journal = journal_path(self.csv_path)
        self.given = dict(given or {})
        self.classes: list[str] = []
        for name in [*(classes or []), *self.given.values()]:
            self._know(name)
        self.answers: dict[str, str] = {}  # path -> class, in the order answered
        self.skipped: set[str] = set()
        self._stack: list[tuple[str, str | None]] = []  # (path, class or None for a skip), undoable
        self.version = 0  # events applied: a model fitted at an older version is out of date
        for event in self._read_journal():
            self._apply(event)

    # --- what is known --------------------------------------------------------------------------------------
    def labels(self) -> dict[str, str]:
        """Every labelled path -> class: given labels, then answers (an answer wins over a given label)."""
        return {**{p: c for p, c in self.given.items() if p not in self.answers}, **self.answers}

    def answered(self, path: str) -> bool:
        return path in self.answers or path in self.skipped or path in self.given

    def counts(self) -> dict[str, int]:
        """Labelled images per class, in class order."""
        counts = dict.fromkeys(self.classes, 0)
        for name in self.labels().values():
            counts[name] += 1
        return counts

    # --- answering ------------------------------------------------------------------------------------------
    def answer(self, path: str, label: str) -> None:
        """Record `label` for `path` (a new class name adds the class)."""
        self._commit({"do": "label", "path": path, "label": label})

    def skip(self, path: str) -> None:
        """Record that `path` was skipped (not shown again; undo brings it back)."""
        self._commit({"do": "skip", "path": path})

    def undo(self) -> str | None:
        """Take back the last answer or skip (also one given before a restart); the path it was for, or None."""
        if not self._stack:
            return None
        path = self._stack[-1][0]
        self._commit({"do": "undo"})
        return path

    def add_class(self, name: str) -> None:
        """Add a class that has no image yet (it can then be chosen on the page)."""
        if name not in self.classes:
            self._commit({"do": "class", "label": name})

    # --- files ----------------------------------------------------------------------------------------------
    def _commit(self, event: dict) -> None:
        self._apply(event)  # first: a bad event raises before anything is written
        line = json.dumps({**event, "t": round(time.time(), 3)}, ensure_ascii=False) + "\n"
        with open(self.journal, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.write_csv()

    def write_csv(self) -> Path:
        """Rewrite the labels CSV (atomically) from what is known now."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows((p, c) for p, c in self.labels().items() if self.keep(p))
        return write_text_atomic(self.csv_path, text.getvalue())

    def _read_journal(self) -> list[dict]:
        if not self.journal.exists():
            return []
        events = []
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or event.get("do") not in ("label", "skip", "undo", "class"):
                    raise ValueError("not an answer")
            except ValueError:
                if number == len(lines):  # a last line cut by a kill mid-write: that answer was never confirmed
                    break
                raise TransferkitError(f"{self.journal}, line {number}, is damaged: {line[:80]!r}. Remove the line "
                                       "(or the file, to start labelling again).") from None
            events.append(event)
        return events

    def _apply(self, event: dict) -> None:
        kind = event["do"]
        self.version += 1
        if kind == "label":
            path, label = str(event["path"]), str(event["label"])
            if not label.strip():
                raise TransferkitError("A class name cannot be empty.")
            self._know(label)
            self.skipped.discard(path)
            self._stack.append((path, self.answers.get(path, "\0none")))
            self.answers.pop(path, None)
            self.answers[path] = label
        elif kind == "skip":
            path = str(event["path"])
            self._stack.append((path, None))
            self.skipped.add(path)
        elif kind == "undo" and self._stack:
            path, before = self._stack.pop()
            if before is None:
                self.skipped.discard(path)
            else:
                self.answers.pop(path, None)
                if before != "\0none":
                    self.answers[path] = before
        elif kind == "class":
            self._know(str(event["label"]))

    def _know(self, name: str) -> None:
        if name not in self.classes:
            self.classes.append(name)
