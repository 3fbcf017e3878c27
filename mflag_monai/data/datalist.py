"""Finding or making the datalist a bundle trains on."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..utils.dicom import read_dicom_header
from ..utils.dist import rank_zero_first
from ..utils.errors import InputError
from ..utils.formats import DICOM_SUFFIXES, IMAGE_SUFFIXES
from ..utils.io import atomic_write_json
from .prepare.check import DatalistError, DatalistSchema, check_datalist
from .prepare.registry import get_preparer

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_VIEWS",
    "IMAGE_SUFFIXES",
    "PATH_KEYS",
    "PRETRAIN_DATASETS",
    "detect_dataset",
    "list_images",
    "load_datalist",
    "merge_datalists",
    "parse_views",
    "resolve_datalist",
]


DEMO = "demo"


#: Entry keys that hold file paths: relative ones are resolved against the datalist's own folder.
PATH_KEYS = ("image", "label", "mask")


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json`` keeps the last of two equal keys and drops the first without a word: refuse instead."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def load_datalist(path: str | os.PathLike) -> dict[str, list]:
    """Read a datalist JSON (``{"training": [...], ...}``); the ``summary`` and ``source`` entries are dropped.

    Relative file paths (``image``, and ``label``/``mask`` when they are text) are resolved against the folder of the
    datalist file, as MONAI's ``load_decathlon_datalist`` does: the same datalist means the same files from any
    working folder. An object with the same key twice is refused (JSON would silently keep only the last one).

    Raises:
        InputError: the file is missing, is not JSON, repeats a key, or is not an object of splits; the message names
            the file. Entries are not checked here (:func:`~mflag_monai.data.check_datalist` does, one line per entry).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, not a datalist .json", path)
    if not path.is_file():
        raise InputError("datalist not found", path)
    try:
        content = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as err:
        raise InputError(f"not a text file, so not a datalist JSON ({err.reason} at byte {err.start})", path) from err
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}", path) from err
    except _DuplicateKey as err:
        raise InputError(
            f"key {err.args[0]!r} appears twice in one object; JSON keeps only the last, so the first would be lost "
            "unseen: merge or rename them",
            path,
        ) from err
    except RecursionError as err:
        raise InputError("nested too deeply to be a datalist (lists or objects within each other)", path) from err
    if not isinstance(content, dict):
        raise InputError(
            f'a datalist is a JSON object of splits ({{"training": [...], "validation": [...]}}), not a {type(content).__name__}',
            path,
        )
    splits = {k: v for k, v in content.items() if k not in ("summary", "source")}
    for name, entries in splits.items():
        if not isinstance(entries, list):
            raise InputError(f"split {name!r} is a {type(entries).__name__}, not a list of entries", path)
    if not splits:
        raise InputError("no splits (expected 'training', 'validation' and/or 'test' lists)", path)
    folder = path.resolve().parent
    for entries in splits.values():
        for entry in entries:
            if not isinstance(entry, dict):
                continue  # the check names it
            for key in PATH_KEYS:
                value = entry.get(key)
                if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
                    entry[key] = str(folder / value)
    return splits


# Datasets read from another dataset's demo folder (the MIMIC-CXR labels come with the MIMIC-CXR release).
DEMO_FOLDERS = {"mimic-cxr-labels": "mimic-cxr"}


# The image–report collections: a folder of any of them is recognised by its files, whatever ``dataset`` says.
PRETRAIN_DATASETS = ("mimic-cxr", "iu-xray", "chexpert-plus")


def detect_dataset(root: str | os.PathLike) -> str | None:
    """The image–report collection a folder holds, from its files (``None`` when it is none of them)."""
    from .prepare.chexpert_plus import detect_chexpert_plus
    from .prepare.iu_xray import detect_iu_xray

    root = Path(root)
    if (root / "mimic-cxr-2.0.0-metadata.csv").is_file():
        return "mimic-cxr"
    if detect_chexpert_plus(root):
        return "chexpert-plus"
    if detect_iu_xray(root):
        return "iu-xray"
    return None


def resolve_datalist(
    dataset_dir: str | os.PathLike | Sequence[str | os.PathLike] = DEMO,
    datalist_file: str | os.PathLike | None = None,
    dataset: str = "mimic-cxr",
    demo_subdir: str | None = None,
    demo_studies: int | None = None,
    skip_bad_entries: bool = False,
    report_key: str | None = None,
    schema: DatalistSchema | str | None = None,
    **prepare_options: object,
) -> dict[str, list[dict]]:
    """The splits a bundle uses, preparing them when needed.

    Args:
        dataset_dir: ``"demo"`` (the built-in demo data, generated on first use), a dataset folder in its official
            layout (prepared with the ``dataset`` preparer), or a datalist ``.json`` used as it is. Or a list of those
            (also as its text, ``"['/data/mimic-cxr', '/data/iu-xray.json']"``): each is resolved, and the splits
            are merged (:func:`merge_datalists`): every entry keeps its ``source``, an image listed twice is kept once.
        datalist_file: where the prepared datalist is written and reused while it is current (for a list, one file
            per folder beside it: ``<stem>.<dataset>-<hash of the folder>.json``).
        dataset: the preparer's name (``prepare NAME`` on the command line). When it names an image–report collection
            (:data:`PRETRAIN_DATASETS`), a folder holding another one of them is prepared as what it holds.
        demo_subdir: the demo dataset's folder (default: the ``dataset`` name, or its entry in ``DEMO_FOLDERS``).
        demo_studies: size of the generated demo collection (default: the generator's).
        skip_bad_entries: drop entries with problems (missing files, unreadable headers, empty reports, bad labels)
            instead of refusing to start.
        report_key: the report text key, checked for empty text (pre-training).
        schema: what the task needs of every entry (:class:`~mflag_monai.data.prepare.check.DatalistSchema`, or a task name:
            ``"pretrain"``, ``"classification"`` (label count from ``dataset``), ``"segmentation"``, ``"detection"``).
        prepare_options: passed to the preparer.

    Raises:
        DatalistError: the datalist has problems and ``skip_bad_entries`` is off, or a required split is missing or
            left empty (skipping cannot help then); the first line names the first problem, the rest list them all.
    """
    sources = _as_sources(dataset_dir)
    with rank_zero_first():  # under torchrun, rank 0 generates/prepares; the others then read the same files
        if isinstance(sources, str):
            splits = _resolve(sources, datalist_file, dataset, demo_subdir, demo_studies, prepare_options)[1]
        else:
            parts = []
            for source in sources:
                own_file = None
                if datalist_file is not None and not source.endswith(".json"):
                    stem = Path(datalist_file)
                    key = hashlib.sha1(source.encode()).hexdigest()[:8]  # a file name, not security
                    own_file = stem.with_name(f"{stem.stem}.{Path(source).name or 'root'}-{key}.json")
                parts.append(_resolve(source, own_file, dataset, demo_subdir, demo_studies, prepare_options))
            splits, notes = merge_datalists(parts)
            print(f"Merged {len(parts)} datalists:\n{notes}", flush=True)
    if isinstance(schema, str):
        schema = DatalistSchema.for_task(schema, dataset=dataset)
    report = check_datalist(splits, report_key=report_key, schema=schema)  # headers only: no pixel decoded here
    if report.problems:
        print(f"Datalist check:\n{report.format()}", flush=True)
    where = _source_label(sources)
    fatal = report.split_errors
    if report.errors and skip_bad_entries and not fatal:
        clean = report.clean
        fatal = [p for p in check_datalist(clean, read_headers=False, schema=schema).split_errors]
        if not fatal:
            print(f"Skipping {len(report.errors)} bad entries (--skip_bad_entries true)", flush=True)
            return clean
    if fatal or report.errors:
        first = (fatal or report.errors)[0]
        hint = (
            ""
            if fatal
            else f"; {len(report.errors)} bad entries in all (listed above): fix them, or pass --skip_bad_entries true"
        )
        raise DatalistError(
            f"{str(first).removeprefix('error: ')}{hint} (datalist {where})\n" + report.format(limit=20)
        )
    return splits


def _source_label(sources: str | list[str]) -> str:
    """How an error names the datalist: its file or folder (or the list of them)."""
    return sources if isinstance(sources, str) else ", ".join(sources)


def _as_sources(dataset_dir: object) -> str | list[str]:
    """One source (a string) or several (a list); a list given as its text is read as a list."""
    if isinstance(dataset_dir, (list, tuple)):
        sources = [str(s) for s in dataset_dir]
    else:
        text = str(dataset_dir).strip()
        if not text.startswith("["):
            return text
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        sources = [str(s) for s in parsed] if isinstance(parsed, (list, tuple)) else None
        if sources is None:
            raise ValueError(f"dataset_dir {text!r} starts with '[' but is not a list of paths")
    if not sources:
        raise ValueError("dataset_dir is an empty list: give at least one folder or datalist")
    return sources


def merge_datalists(parts: Sequence[tuple[str, dict[str, list[dict]]]]) -> tuple[dict[str, list[dict]], str]:
    """Merge several datalists' splits into one.

    Every entry gets ``"source"`` (its own when it has one, else its part's name). An image already listed, by an
    earlier part or earlier in the same part, is dropped: the same file, or the same ``image_id`` / ``dicom_id``
    within the same source (one image in two layouts of one collection). Entries are given the same keys, so that
    batches mixing sources collate: a text key missing from some entries is filled with ``""``; any other key
    missing from some is removed from all.

    Args:
        parts: ``(source name, {"training": [...], ...})`` in order; the first listing of an image wins.

    Returns:
        The merged splits and a few lines saying what came from where.
    """
    seen: set[tuple] = set()
    merged: dict[str, list[dict]] = {}
    lines, duplicates = [], Counter()
    for name, splits in parts:
        sizes = Counter()
        for split, entries in splits.items():
            target = merged.setdefault(split, [])
            for entry in entries:
                source = str(entry.get("source") or name)
                keys = {("file", os.path.normpath(os.path.abspath(str(entry.get("image", "")))))}
                image_id = entry.get("image_id", entry.get("dicom_id"))
                if image_id:
                    keys.add(("id", source, str(image_id)))
                if keys & seen:
                    duplicates[name] += 1
                    continue
                seen |= keys
                target.append({**entry, "source": source})
                sizes[split] += 1
        listed = ", ".join(f"{split} {n}" for split, n in sizes.items()) or "no entries"
        lines.append(
            f"  {name}: {listed}" + (f"; {duplicates[name]} images already listed, dropped" if duplicates[name] else "")
        )
    everything = [e for entries in merged.values() for e in entries]
    for key in sorted({k for e in everything for k in e}):
        values = [e[key] for e in everything if key in e]
        if len(values) == len(everything):
            continue
        if all(isinstance(v, str) for v in values):
            for e in everything:
                e.setdefault(key, "")
            lines.append(f"  {key!r}: missing in {len(everything) - len(values)} entries, set to ''")
        else:
            for e in everything:
                e.pop(key, None)
            lines.append(
                f"  {key!r}: missing in {len(everything) - len(values)} entries and not text, removed from all"
            )
    return merged, "\n".join(lines)


def _newest_input(root: Path, dataset: str) -> float:
    """The newest modification time among a dataset folder's tables (and, for IU X-ray, its reports and folders),
    so that a prepared datalist is made again when they change."""
    files = list(root.glob("*.csv"))
    if dataset == "iu-xray":
        files += [
            *root.glob("*.xml"),
            *root.glob("*/*.xml"),
            *root.glob("*/*.csv"),
            *(p for p in root.iterdir() if p.is_dir()),
        ]
    elif dataset == "chexpert-plus":
        files += list(root.glob("*/*.csv"))
    return max((p.stat().st_mtime for p in files), default=0.0)


def _resolve(
    source, datalist_file, dataset, demo_subdir, demo_studies, prepare_options
) -> tuple[str, dict[str, list[dict]]]:
    """``(source name, splits)`` of one ``dataset_dir`` value."""
    if source.endswith(".json"):
        return _json_source_name(source), load_datalist(source)
    if source == DEMO:
        from .demo import ensure_demo_data

        demo_kwargs = {"num_studies": demo_studies} if demo_studies else {}
        root = Path(ensure_demo_data(**demo_kwargs)) / (demo_subdir or DEMO_FOLDERS.get(dataset, dataset))
    else:
        root = Path(source).expanduser().resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset_dir {source!r} is neither 'demo', a datalist .json, nor a folder.")
    if dataset in PRETRAIN_DATASETS:
        dataset = detect_dataset(root) or dataset
    stamp = {"dataset": dataset, "root": str(root), "options": {k: str(v) for k, v in sorted(prepare_options.items())}}
    stamp["newest_input"] = _newest_input(root, dataset)
    if datalist_file is not None and Path(datalist_file).is_file():
        content = json.loads(Path(datalist_file).read_text())
        if content.get("source") == stamp:
            return dataset, {k: v for k, v in content.items() if isinstance(v, list)}
    out = Path(datalist_file) if datalist_file is not None else None
    prepared = get_preparer(dataset)(root, out=out, **prepare_options)
    logger.info("Prepared %s datalist from %s:\n%s", dataset, root, prepared.format_summary())
    print(f"Prepared {dataset} datalist from {root}:\n{prepared.format_summary()}", flush=True)
    if datalist_file is not None:
        atomic_write_json({**prepared.to_json(), "source": stamp}, datalist_file)
    return dataset, prepared.datalist


def _json_source_name(path: str) -> str:
    """A datalist file's source name: the dataset its summary names (the preparers write one), else its stem."""
    try:
        summary = json.loads(Path(path).read_text()).get("summary") or {}
    except (OSError, ValueError, AttributeError):
        summary = {}
    return str(summary.get("dataset") or Path(path).stem) if isinstance(summary, dict) else Path(path).stem


#: The value of ``views`` that switches the ViewPosition filter off (as ``None`` does).
ALL_VIEWS = "all"

# ViewPosition is a Code String: upper-case letters, digits, space and underscore, at most 16 characters
_VIEW = re.compile(r"^[A-Z0-9_ ]{1,16}$")
# The name the standard gives a media's directory file: DICOM with the preamble, but no image
_DICOMDIR = "DICOMDIR"


def parse_views(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The ViewPositions to keep, from ``"PA,AP"``, ``["PA", "AP"]``, ``"all"`` or ``None``.

    Upper-cased, in the order given, without repeats. ``None``, ``""``, ``"all"`` or an empty sequence mean no filter
    (``None``).

    Raises:
        InputError: a value that is not a view position (``ViewPosition`` is a DICOM code string: letters, digits,
            space and underscore, at most 16 characters).
    """
    if value is None:
        return None
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Sequence):
        items = [part for item in value for part in str(item).split(",")]
    else:
        raise InputError(f"expected view positions such as 'PA,AP' or '{ALL_VIEWS}', got {value!r}", "views")
    views = list(dict.fromkeys(item.strip().upper() for item in items if item.strip()))
    if not views or ALL_VIEWS.upper() in views:
        return None
    bad = [view for view in views if not _VIEW.match(view)]
    if bad:
        raise InputError(
            f"{bad[0]!r} is not a DICOM ViewPosition (letters, digits, space or underscore, at most 16 characters); "
            f"expected views such as 'PA,AP' or '{ALL_VIEWS}'",
            "views",
        )
    return tuple(views)


def _has_dicom_preamble(path: Path) -> bool:
    """Whether bytes 128-131 of ``path`` are ``DICM`` (a Part-10 file); reads those 4 bytes only."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:  # unreadable: not listed; the count of left-out files includes it
        return False


#: SOP classes a PACS export holds beside its images that are not images (results such as a DICOM SEG or SR, a
#: presentation state, a key object selection): left out of inference inputs by their SOP Class UID prefix.
NON_IMAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66": "SEG/registration",
    "1.2.840.10008.5.1.4.1.1.88": "SR",
    "1.2.840.10008.5.1.4.1.1.11": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104": "encapsulated document",
}


def _header(path: Path) -> tuple[str, str]:
    """The file's ViewPosition (upper case, ``""`` when blank or missing) and what it is when not an image (``""``
    for an image), from the header only."""
    from pydicom.errors import InvalidDicomError

    try:
        header = read_dicom_header(path, ["ViewPosition", "SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError):
        return "", ""  # the loader reports a broken file; the filters keep what they cannot read
    sop_class = str(header.get("SOPClassUID", "") or "")
    kind = next((name for prefix, name in NON_IMAGE_SOP_CLASSES.items() if sop_class.startswith(prefix + ".")), "")
    return str(header.get("ViewPosition", "") or "").strip().upper(), kind


def _filter_dicom(path: Path, files: list[tuple[Path, bool]], views: tuple[str, ...] | None) -> list[Path]:
    """The images to read: non-image DICOM objects (SEG, SR, ...) left out, and with ``views``, the DICOM images
    whose ViewPosition is not one of them; DICOM images without a ViewPosition and other images are kept."""
    kept: list[Path] = []
    left_out: Counter[str] = Counter()
    not_images: Counter[str] = Counter()
    found: Counter[str] = Counter()
    blank = 0
    for file, is_dicom in files:
        view, kind = _header(file) if is_dicom else ("", "")
        if kind:
            not_images[kind] += 1
            continue
        if is_dicom:
            found[view or "(none)"] += 1
        if views is None or not view or view in views:
            kept.append(file)
            blank += bool(views is not None and is_dicom and not view)
        else:
            left_out[view] += 1
    if not_images:
        counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(not_images.items()))
        logger.info(
            "left out %d DICOM objects under %s that are not images (%s)", sum(not_images.values()), path, counts
        )
    if not kept:
        seen = ", ".join(f"{view}: {n}" for view, n in sorted(found.items()))
        if views is None or not found:
            raise FileNotFoundError(f"No image under {path}: only DICOM objects that are not images")
        raise InputError(
            f"no image with ViewPosition {', '.join(views)} (found {seen}); name the views to use, or "
            f"'{ALL_VIEWS}' (--views)",
            path,
        )
    parts = []
    if left_out:
        counts = ", ".join(f"{view}: {n}" for view, n in sorted(left_out.items()))
        parts.append(f"left out {sum(left_out.values())} images by ViewPosition ({counts})")
    if blank:
        parts.append(f"kept {blank} without a ViewPosition")
    if parts:
        level = logging.WARNING if left_out else logging.INFO
        logger.log(level, "%s under %s (views %s); --views to change", ", ".join(parts), path, ",".join(views or ()))
    return kept


def list_images(
    path: str | os.PathLike,
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    views: str | Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """``[{"image": file}]`` for one image file, or for every image file the loader reads under a folder (sorted).

    A folder's images are the files with one of ``suffixes``
    (:data:`~mflag_monai.utils.formats.IMAGE_SUFFIXES`) and, when ``suffixes`` include DICOM's, DICOM files named
    otherwise (``IM0001``, ``1.2.840...``), as a PACS export names them: those with ``DICM`` at byte 128 (only
    those 4 bytes are read; a ``DICOMDIR`` is not an image). Other files are left out, with one INFO line counting
    them.

    Args:
        path: an image file or a folder (searched recursively).
        suffixes: the file suffixes taken as images (lower case, with the dot).
        views: keep only DICOM images whose ViewPosition is one of these (``"PA,AP"``, ``("PA", "AP")``; see
            :func:`parse_views`); ``None`` or ``"all"`` keeps every view. DICOM files with a blank or missing
            ViewPosition and non-DICOM images (PNG/JPG) are kept; a WARNING line counts the images left out per view.

    DICOM objects that are not images (a SEG or SR a PACS export holds beside its images, :data:`NON_IMAGE_SOP_CLASSES`)
    are left out and counted, their headers read without pixel data.

    Raises:
        FileNotFoundError: nothing at ``path``, or no image under the folder.
        InputError: the view filter leaves no image (the message names the views found), or ``views`` is malformed.
    """
    views = parse_views(views)
    path = Path(path).expanduser()
    dicom_suffixes = tuple(s for s in suffixes if s in DICOM_SUFFIXES)
    if path.is_file():
        files = [(path, path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_preamble(path))]
    elif not path.is_dir():
        raise FileNotFoundError(f"No image file or folder at {path}")
    else:
        files, others = [], 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            suffix = file.suffix.lower()
            if suffix in suffixes:
                files.append((file, suffix in DICOM_SUFFIXES))
            elif dicom_suffixes and file.name.upper() != _DICOMDIR and _has_dicom_preamble(file):
                files.append((file, True))
            else:
                others += 1
        if others:
            logger.info("%d files under %s are not images and were left out", others, path)
        if not files:
            raise FileNotFoundError(
                f"No {', '.join(suffixes)} files" + (" or DICOM files" if dicom_suffixes else "") + f" under {path}"
            )
    kept = _filter_dicom(path, files, views)
    return [{"image": str(p)} for p in kept]
