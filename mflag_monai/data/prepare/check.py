"""Checking a datalist before training: every problem at once, fast (headers only, no pixel decoding).

A datalist is validated against the task that will read it (:class:`DatalistSchema`): the keys every entry needs, their
types, the label's length and range, finiteness, and keys the batches cannot collate (a key some entries lack, a
``null``, a value whose type differs from the other entries'). Each problem names the split, the entry and the file.
"""

from __future__ import annotations

import logging
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...utils.errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "DETECTION_CLASSES",
    "TASKS",
    "DatalistError",
    "DatalistProblem",
    "DatalistReport",
    "DatalistSchema",
    "check_datalist",
    "visible_text",
]

#: The tasks a datalist can be checked for.
TASKS = ("pretrain", "classification", "segmentation", "detection", "images")

#: Box classes of the detection bundle (RSNA opacities, Object-CXR foreign objects): every box label is 0.
DETECTION_CLASSES = 1


class DatalistError(InputError):
    """A datalist with errors; the first line (``headline``) names the first problem (entry, file, what), the rest
    list them all."""

    @property
    def headline(self) -> str:
        """The first line of the message: what a one-line error shows."""
        return str(self).split("\n", 1)[0]


@dataclass(frozen=True)
class DatalistSchema:
    """What the entries of a datalist must hold for one task.

    Attributes:
        task: ``"pretrain"`` (image and non-empty report text), ``"classification"`` (image and label: a vector of
            ``num_classes`` values in [0, 1] for multi-label, a class index below ``num_classes`` for multi-class),
            ``"segmentation"`` (image and a mask file), ``"detection"`` (image, ``[x1, y1, x2, y2]`` boxes and as many
            integer box labels) or ``"images"`` (an image only).
        num_classes: labels (multi-label) or classes (multi-class); ``None``: the most common label length.
        problem: ``"multi-label"`` or ``"multi-class"`` (classification).
        required_splits: splits that must be present and non-empty.
    """

    task: str = "images"
    num_classes: int | None = None
    problem: str = "multi-label"
    required_splits: tuple[str, ...] = ("training",)
    image_key: str = "image"
    report_key: str = "report"
    label_key: str = "label"
    boxes_key: str = "boxes"
    box_labels_key: str = "labels"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}", "datalist schema")

    @classmethod
    def for_task(cls, task: str, dataset: str | None = None, **kwargs: object) -> DatalistSchema:
        """The schema of ``task``; for classification the label count and problem come from ``dataset``'s task."""
        if task == "detection" and "num_classes" not in kwargs:
            kwargs = {"num_classes": DETECTION_CLASSES, **kwargs}
        if task == "classification" and dataset is not None and "num_classes" not in kwargs:
            from .labels import CLASSIFICATION_TASKS

            if dataset in CLASSIFICATION_TASKS:
                spec = CLASSIFICATION_TASKS[dataset]
                kwargs = {"num_classes": spec.num_classes, "problem": spec.problem, **kwargs}
        return cls(task=task, **kwargs)


def infer_schema(datalist: Mapping[str, Sequence], **kwargs: object) -> DatalistSchema:
    """A schema guessed from the entries (for ``check`` without ``--task``): reports mean pre-training, boxes
    detection, a label file segmentation, numeric labels classification."""
    entries = [e for v in datalist.values() if isinstance(v, list) for e in v if isinstance(e, Mapping)]
    first = entries[0] if entries else {}
    if "report" in first:
        return DatalistSchema("pretrain", **kwargs)
    if "boxes" in first:
        return DatalistSchema("detection", **kwargs)
    label = first.get("label")
    if isinstance(label, str):
        return DatalistSchema("segmentation", **kwargs)
    if isinstance(label, list):
        return DatalistSchema("classification", problem="multi-label", **kwargs)
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return DatalistSchema("classification", problem="multi-class", **kwargs)
    return DatalistSchema("images", **kwargs)


@dataclass
class DatalistProblem:
    """One problem: the split, the entry index (``-1``: the split itself), the file (if any), what is wrong, and
    whether it is fatal."""

    split: str
    index: int
    path: str
    problem: str
    error: bool = True

    def __str__(self) -> str:
        kind = "error" if self.error else "warning"
        where = self.split if self.index < 0 else f"{self.split}[{self.index}]"
        return f"{kind}: {where}" + (f" {self.path}" if self.path else "") + f": {self.problem}"


@dataclass
class DatalistReport:
    """All problems found, and the entries without errors per split."""

    problems: list[DatalistProblem] = field(default_factory=list)
    clean: dict[str, list[dict]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    @property
    def errors(self) -> list[DatalistProblem]:
        """The fatal problems."""
        return [p for p in self.problems if p.error]

    @property
    def split_errors(self) -> list[DatalistProblem]:
        """Fatal problems of whole splits (missing, empty, not a list): skipping entries cannot fix them."""
        return [p for p in self.errors if p.index < 0]

    def format(self, limit: int = 50) -> str:
        """One line per problem (the first ``limit``), then a summary line."""
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        total = sum(len(v) for v in self.clean.values())
        lines.append(
            f"{len(self.errors)} errors, {len(self.problems) - len(self.errors)} warnings ({kinds or 'none'}); "
            f"{total} usable entries"
        )
        return "\n".join(lines)


def _header(path: str):
    """The image file's header verdict and size (pixels are not decoded): the loader's own checks."""
    from ...transforms.io import inspect_cxr_file

    return inspect_cxr_file(path)


def visible_text(text: str) -> str:
    """``text`` without whitespace and invisible characters (zero-width spaces and joiners, BOMs, control and
    format characters): what is left is what a reader (and the tokenizer) would see."""
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Zs"))


def _number_problem(value: object, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{what} {value!r} is not a number"
    if math.isnan(value):
        return f"{what} NaN is not a number"
    if math.isinf(value):
        return f"{what} {value} is infinite"
    return None


def _label_problem(label: object, schema: DatalistSchema, expected_len: int | None) -> str | None:
    """Why a classification label does not fit the schema (or, for an unknown task, any label), or ``None``."""
    if isinstance(label, (list, tuple)):
        if schema.task == "classification" and schema.problem == "multi-class":
            classes = f"0..{schema.num_classes - 1}" if schema.num_classes else "0..N-1"
            return f"label is a list of {len(label)} values; a multi-class task wants one class index ({classes})"
        length = schema.num_classes if schema.task == "classification" else None
        if length is not None and len(label) != length:
            return f"label has {len(label)} values; the task has {length} labels"
        if length is None and expected_len is not None and len(label) != expected_len:
            return f"label has {len(label)} values, other entries have {expected_len}"
        if not label:
            return "label is an empty list"
        for v in label:
            if why := _number_problem(v, "label value"):
                return why
            if schema.task == "classification" and not 0.0 <= v <= 1.0:
                return f"label value {v!r} is outside [0, 1]"
        return None
    if why := _number_problem(label, "label"):
        return f"{why}: neither a list of numbers, a class index nor a mask file"
    if schema.task == "classification" and schema.problem == "multi-label":
        return f"label {label!r} is a single number; the task wants a list of {schema.num_classes or 'N'} values"
    if float(label) != int(label):
        return f"class index {label!r} is not a whole number"
    if label < 0:
        return f"class index {label} is negative"
    if schema.num_classes is not None and label >= schema.num_classes:
        return f"class index {label} is out of range; the task has {schema.num_classes} classes (0..{schema.num_classes - 1})"
    return None


def _boxes_problem(entry: Mapping, schema: DatalistSchema, shape: tuple[int, int] | None = None) -> str | None:
    """Why the boxes of a detection entry are unusable: malformed, empty (zero area), outside the image of
    ``shape`` (rows, columns; from its header), or labelled with a class the task does not have."""
    boxes, labels = entry.get(schema.boxes_key), entry.get(schema.box_labels_key)
    if not isinstance(boxes, list):
        return f"'{schema.boxes_key}' is {type(boxes).__name__}, not a list of [x1, y1, x2, y2] boxes"
    if not isinstance(labels, list) or len(labels) != len(boxes):
        return f"'{schema.box_labels_key}' must list one class index per box ({len(boxes)} boxes)"
    for i, box in enumerate(boxes):
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            return f"box {i} is {box!r}, not [x1, y1, x2, y2]"
        for v in box:
            if why := _number_problem(v, f"box {i} coordinate"):
                return why
        if box[2] <= box[0] or box[3] <= box[1]:
            return f"box {i} {list(box)} has no area (x2 <= x1 or y2 <= y1); boxes are [x1, y1, x2, y2]"
        if shape is not None and (min(box) < 0 or box[2] > shape[1] or box[3] > shape[0]):
            return f"box {i} {list(box)} reaches outside the {shape[1]}x{shape[0]} (width x height) image"
    for v in labels:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return f"box label {v!r} is not a class index"
        if schema.num_classes is not None and v >= schema.num_classes:
            return f"box label {v} is out of range; the task has {schema.num_classes} box class(es) (0..{schema.num_classes - 1})"
    return None


def _mask_problem(mask_path: str, image_header) -> str | None:
    """Why a segmentation mask cannot label its image: unreadable, lossy (JPEG changes the edge pixels, marking
    pixels that are not in the mask), or of another size than the image (each would be resized on its own, so the
    mask would no longer lie on the image)."""
    mask = _header(mask_path)
    if mask.problem:
        return f"mask: {mask.problem}"
    if mask.lossy:
        return "mask is lossy-compressed (JPEG): its edges are changed; save masks as PNG (or uncompressed DICOM)"
    if image_header is not None and not image_header.problem and mask.shape and image_header.shape:
        if mask.shape != image_header.shape:
            (mr, mc), (ir, ic) = mask.shape, image_header.shape
            return f"mask is {mc}x{mr} (width x height), its image {ic}x{ir}: a mask must have its image's size"
    return None


def _kind(value: object) -> str:
    """The collate-relevant kind of a value: entries of a batch must agree on it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def check_datalist(
    datalist: Mapping[str, object],
    image_key: str = "image",
    report_key: str | None = None,
    label_key: str = "label",
    read_headers: bool = True,
    schema: DatalistSchema | str | None = None,
) -> DatalistReport:
    """Find every problem of every split: entries that are not objects, missing files, images the loader would refuse
    (from their headers), empty or non-text reports, labels that do not fit the task (length, range, type,
    NaN/inf), malformed boxes, keys that would break a batch, duplicates, and required splits that are missing.

    Args:
        datalist: ``{split: [entry, ...]}``.
        image_key: the image path key.
        report_key: the report text key; when given, every entry needs a non-empty text there (pre-training).
        label_key: the label key (a list of numbers, a class index, or a mask file path), checked when present.
        read_headers: read each image's header; ``False`` only checks files exist.
        schema: the task's :class:`DatalistSchema` (or its task name); ``None``: the ``images`` schema, with the
            report checked when ``report_key`` is given, and the labels against each other.
    """
    if isinstance(schema, str):
        schema = DatalistSchema.for_task(schema)
    if schema is None:
        schema = DatalistSchema("pretrain" if report_key else "images", required_splits=())
    if report_key is None and schema.task == "pretrain":
        report_key = schema.report_key
    report = DatalistReport()
    for split in schema.required_splits:
        entries = datalist.get(split)
        if not isinstance(entries, list) or not entries:
            what = "missing" if entries is None else "empty" if isinstance(entries, list) else "not a list"
            report.problems.append(DatalistProblem(split, -1, "", f"the '{split}' split is {what}"))
            report.counts[f"{what} split"] += 1
    seen: dict[str, tuple[str, int]] = {}
    for split, entries in datalist.items():
        if not isinstance(entries, list):
            if split not in ("summary", "source"):
                report.problems.append(DatalistProblem(split, -1, "", f"is a {_kind(entries)}, not a list of entries"))
                report.counts["split not a list"] += 1
            continue
        report.clean[split] = []
        objects = [e for e in entries if isinstance(e, Mapping)]
        lengths = Counter(len(e[label_key]) for e in objects if isinstance(e.get(label_key), (list, tuple)))
        expected = lengths.most_common(1)[0][0] if lengths else None
        # the keys and value kinds most entries share: a batch of entries that differ does not collate (keys with
        # checks of their own are left to those, so that each problem is said once)
        own = (
            {image_key, report_key}
            | ({label_key} if schema.task in ("classification", "segmentation") else set())
            | ({schema.boxes_key, schema.box_labels_key} if schema.task == "detection" else set())
        )
        key_sets = Counter(frozenset(k for k in e if k not in own) for e in objects)
        common_keys = key_sets.most_common(1)[0][0] if key_sets else frozenset()
        kinds = {k: Counter(_kind(e[k]) for e in objects if k in e).most_common(1)[0][0] for k in common_keys}
        for i, entry in enumerate(entries):
            found: list[DatalistProblem] = []
            if not isinstance(entry, Mapping):
                found.append(
                    DatalistProblem(split, i, "", f"entry is a {_kind(entry)}, not an object with '{image_key}'")
                )
                report.counts["not an object"] += 1
                report.problems.extend(found)
                continue
            raw_path = entry.get(image_key)
            path = raw_path if isinstance(raw_path, str) else ""

            def add(problem: str, kind: str, error: bool = True, file: str = path, _where=(split, i, found)) -> None:
                _where[2].append(DatalistProblem(_where[0], _where[1], file, problem, error))
                report.counts[kind] += 1

            if raw_path is None or raw_path == "":
                add(f"no '{image_key}' entry", "missing image key")
            elif not isinstance(raw_path, str):
                add(f"'{image_key}' is a {_kind(raw_path)}, not a file path", "bad image key")
            header = None
            if isinstance(raw_path, str) and raw_path and not os.path.isfile(path):
                add("file not found", "missing file")
            elif isinstance(raw_path, str) and raw_path and read_headers:
                header = _header(path)
                if header.problem:
                    add(header.problem, "unreadable image")
            if path in seen:
                add(f"duplicate of {seen[path][0]}[{seen[path][1]}]", "duplicate", error=False)
            elif path:
                seen[path] = (split, i)
            if report_key is not None:
                text = entry.get(report_key)
                if not isinstance(text, str):
                    add(f"report is {_kind(text)}, not text", "report not text")
                elif not visible_text(text):
                    add("empty report" + (" (only whitespace or invisible characters)" if text else ""), "empty report")
            if schema.task in ("classification", "segmentation") and label_key not in entry:
                add(f"no '{label_key}' entry", "missing label")
            if label_key in entry and schema.task != "detection":
                label = entry[label_key]
                if isinstance(label, str):
                    if schema.task == "classification":
                        add(f"label {label!r} is text; the task wants numbers", "label problem")
                    elif not os.path.isfile(label):
                        add("label file not found", "missing label file", file=label)
                    elif read_headers and (why := _mask_problem(label, header)):
                        add(why, "mask problem", file=label)
                elif schema.task == "segmentation":
                    add(f"label is a {_kind(label)}, not a mask file", "label problem")
                elif why := _label_problem(label, schema, expected):
                    add(why, "label problem")
            shape = header.shape if header is not None and not header.problem else None
            if schema.task == "detection" and (why := _boxes_problem(entry, schema, shape)):
                add(why, "box problem")
            nulls = sorted(str(k) for k, v in entry.items() if v is None and k not in (report_key, image_key))
            if nulls:
                add(f"null value{'s' if len(nulls) > 1 else ''} in {', '.join(map(repr, nulls))}", "null value")
            keys = set(entry) - own
            extra, lacking = sorted(keys - common_keys), sorted(common_keys - keys)
            if extra or lacking:
                parts = ([f"extra key(s) {extra}"] if extra else []) + ([f"lacks {lacking}"] if lacking else [])
                add(f"{'; '.join(parts)} unlike the other entries (a batch would not collate)", "inconsistent keys")
            for k in sorted(common_keys & keys, key=str):
                kind = _kind(entry[k])
                if kind not in (kinds[k], "null") and not {kind, kinds[k]} <= {"number"}:
                    add(f"'{k}' is {kind}, other entries hold {kinds[k]}", "inconsistent type")
            report.problems.extend(found)
            if not any(p.error for p in found):
                report.clean[split].append(dict(entry))
    return report
