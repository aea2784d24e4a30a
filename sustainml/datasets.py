"""Profile the dataset a problem points to: what is in it, how much, how balanced, how big on disk.

The encoder feeds the profile's sample count and sample shape into the task, and the result carries
the profile so that a user sees their data next to the footprint (the design study's DI2). Reading is
done by pandas (CSV, and Parquet through pyarrow) and by Pillow for image headers; nothing in a data
file is ever executed: pickle, joblib, NumPy object arrays and the like are refused by extension and
never opened.

The task encoder, the web UI (what an upload may be) and ``sustainml encode`` read datasets by these
rules.

Every refusal is a ``DatasetError`` (an ``InvalidProblem``) with one line: the path, what is wrong
and what to do.
"""

from __future__ import annotations

import copy
import csv
import os
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sustainml import msg
from sustainml.exceptions import InvalidProblem

__all__ = ["DEFAULT_MAX_DATASET_MB", "TABLE_FORMATS", "DataPolicy", "DatasetError", "profile_dataset", "resolve_dataset"]

DEFAULT_MAX_DATASET_MB = 512.0
"""The largest file (or image folder) profiled unless the operator says otherwise."""

TABLE_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
NEVER_OPENED = {".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".h5", ".hdf5", ".sav"}
"""Formats that can carry code which runs on load (pickle and its wrappers): refused without opening."""

MAX_CLASSES_SHOWN = 50
"""A target column with more distinct values than this is not summarised as classes."""

_SNIFF_BYTES = 64 * 1024
_PARQUET_MAGIC = b"PAR1"


class DatasetError(InvalidProblem):
    """Raised when a dataset path cannot or may not be profiled; the message says why and what to do."""


@dataclass(frozen=True)
class DataPolicy:
    """Where datasets may be read from, and how large they may be.

    ``root`` is the only folder (with its subfolders) a problem's dataset path may point into; paths
    are resolved, symbolic links included, before the check. ``max_bytes`` bounds one file, or the
    sum of the image files of a folder.
    """

    root: Path
    max_bytes: int

    @classmethod
    def from_params(cls, data_dir: str, max_dataset_mb: float) -> DataPolicy:
        return cls(root=Path(data_dir or ".").resolve(), max_bytes=int(max_dataset_mb * 1024 * 1024))


def profile_dataset(path: str, *, policy: DataPolicy, target_column: str = "") -> msg.DatasetProfile:
    """The profile of the CSV, Parquet file or image folder at ``path`` (relative to ``policy.root``)."""
    where = resolve_dataset(path, policy)
    if where.is_dir():
        return _profile_images(path, where, policy)
    suffix = where.suffix.lower()
    if suffix in NEVER_OPENED:
        raise DatasetError(
            f"dataset.path {path!r}: {suffix} files can run code when loaded and are never opened; "
            "export the data as CSV or Parquet"
        )
    if suffix not in TABLE_FORMATS:
        raise DatasetError(
            f"dataset.path {path!r}: unknown format {suffix or '(no extension)'!r}; "
            f"give a CSV ({', '.join(s for s, f in TABLE_FORMATS.items() if f == 'csv')}), "
            "a Parquet file (.parquet, .pq) or a folder of images"
        )
    stat = where.stat()
    if stat.st_size == 0:
        raise DatasetError(f"dataset.path {path!r} is empty (0 bytes); give a file with a header row and data")
    _check_size(path, stat.st_size, policy)
    # The encode service is asked again while a user edits the rest of a problem: a file that has not
    # changed (same size and modification time) is read once.
    key = (where, stat.st_mtime_ns, stat.st_size, target_column, path)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return copy.deepcopy(_cache[key])
    fmt = TABLE_FORMATS[suffix]
    table = _read_csv(path, where) if fmt == "csv" else _read_parquet(path, where)
    profile = _profile_table(path, fmt, stat.st_size, table, target_column)
    with _cache_lock:
        _cache[key] = copy.deepcopy(profile)
        while len(_cache) > _CACHED_PROFILES:
            _cache.popitem(last=False)
    return profile


_CACHED_PROFILES = 16
_cache: OrderedDict[tuple[object, ...], msg.DatasetProfile] = OrderedDict()
_cache_lock = threading.Lock()


def resolve_dataset(path: str, policy: DataPolicy) -> Path:
    """Where ``path`` (relative to ``policy.root``, or absolute inside it) lies: an existing file or
    folder inside the data folder. Raises DatasetError, one line, otherwise; a front end that takes
    a path from a user checks it here too."""
    if not path.strip():
        raise DatasetError("dataset.path is empty; give a file or folder under the data folder, or leave it unset")
    if "\x00" in path:
        raise DatasetError("dataset.path contains a NUL character; give a plain file path")
    given = Path(path).expanduser()
    where = (given if given.is_absolute() else policy.root / given).resolve()
    if not where.is_relative_to(policy.root):
        raise DatasetError(
            f"dataset.path {path!r} is outside the allowed data folder {policy.root}; put the data under "
            "it (the task encoder's data_dir parameter or SUSTAINML_DATA_DIR sets the folder)"
        )
    if not where.exists():
        raise DatasetError(f"dataset.path {path!r} does not exist under the data folder {policy.root}")
    if not (where.is_file() or where.is_dir()):
        raise DatasetError(f"dataset.path {path!r} is neither a regular file nor a folder")
    return where


def _check_size(path: str, size: int, policy: DataPolicy) -> None:
    if size > policy.max_bytes:
        raise DatasetError(
            f"dataset.path {path!r} is {_mb(size)}, over the {_mb(policy.max_bytes)} limit; give a sample "
            "of the data, or raise the task encoder's max_dataset_mb parameter"
        )


def _mb(size: float) -> str:
    """A size for people: "812 B", "3.4 KiB", "1.21 GiB"."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} GiB"


# ---------------------------------------------------------------- tables


def _read_csv(path: str, where: Path) -> pd.DataFrame:
    with where.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise DatasetError(
            f"dataset.path {path!r} is not a text CSV (binary data at byte {nul}); "
            "give a comma-separated text file, or a Parquet file"
        )
    try:
        # The separator is sniffed on the first lines by Python's csv module, then pandas' C parser reads.
        sample = head.decode("utf-8-sig", errors="ignore").splitlines()[:20]
        try:
            sep = csv.Sniffer().sniff("\n".join(sample), delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
        return pd.read_csv(where, sep=sep, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"dataset.path {path!r} is not UTF-8 text (byte {e.start} cannot be decoded); save it as UTF-8 CSV"
        ) from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:  # csv.Error is a ValueError too
        reason = " ".join(str(e).split())[:160]
        raise DatasetError(f"dataset.path {path!r} could not be read as CSV: {reason}") from e


def _read_parquet(path: str, where: Path) -> pd.DataFrame:
    with where.open("rb") as f:
        start = f.read(4)
        f.seek(-4, os.SEEK_END)
        end = f.read(4)
    if start != _PARQUET_MAGIC or end != _PARQUET_MAGIC:
        raise DatasetError(
            f"dataset.path {path!r} is not a Parquet file (it lacks the PAR1 marks); give a real Parquet or a CSV"
        )
    try:
        return pd.read_parquet(where)
    except Exception as e:  # pyarrow raises its own hierarchy (ArrowInvalid, OSError, ...): one line for all
        reason = " ".join(str(e).split())[:160]
        raise DatasetError(f"dataset.path {path!r} could not be read as Parquet: {reason}") from e


def _profile_table(path: str, fmt: str, size: int, table: pd.DataFrame, target_column: str) -> msg.DatasetProfile:
    if table.shape[1] == 0 or table.shape[0] == 0:
        raise DatasetError(f"dataset.path {path!r} has no data rows under its header; give a table with data")
    table.columns = [str(c) for c in table.columns]
    if target_column and target_column not in table.columns:
        raise DatasetError(
            f"dataset.target_column {target_column!r} is not a column of {path!r}; "
            f"its columns are {', '.join(table.columns[:20])}"
        )
    target = target_column or table.columns[-1]
    missing = table.isna().sum()
    columns = [
        msg.ColumnProfile(name=name, dtype=str(table[name].dtype), missing=int(missing[name]),
                          distinct=int(table[name].nunique(dropna=True)))
        for name in table.columns
    ]
    balance = _class_balance(table[target])
    features = table.shape[1] - 1 if table.shape[1] > 1 else 1
    total_missing = int(missing.sum())
    summary = (
        f"{fmt.upper()} {_mb(size)}: {table.shape[0]:,} rows x {table.shape[1]} columns, "
        f"{total_missing:,} missing values ({total_missing / table.size:.1%}); target {target!r}"
    )
    if balance:
        top = max(balance, key=lambda c: c.count)
        summary += f", {len(balance)} classes, the largest {top.label!r} at {top.count / table.shape[0]:.0%}"
    else:
        summary += f" ({table[target].dtype}, {table[target].nunique()} distinct values)"
    return msg.DatasetProfile(
        path=path, format=fmt, size_bytes=size, rows=table.shape[0], columns=table.shape[1],
        column_profiles=columns, missing_values=total_missing, target_column=target,
        class_balance=balance, sample_shape=[features], summary=summary,
    )


def _class_balance(column: pd.Series) -> list[msg.ClassCount]:
    """Counts per class when the target looks categorical: text, booleans, or few distinct integers."""
    types = pd.api.types
    categorical = (
        types.is_string_dtype(column) or types.is_object_dtype(column) or types.is_bool_dtype(column)
        or isinstance(column.dtype, pd.CategoricalDtype)
        or (types.is_integer_dtype(column) and column.nunique() * 2 <= len(column))
    )
    if not categorical or column.nunique() > MAX_CLASSES_SHOWN:
        return []
    counts = column.value_counts(dropna=True)
    return [msg.ClassCount(label=str(label), count=int(n)) for label, n in counts.items()]


# ---------------------------------------------------------------- image folders


def _profile_images(path: str, where: Path, policy: DataPolicy) -> msg.DatasetProfile:
    """A folder of images, classes as subfolder names (the ImageFolder convention). Only headers are read."""
    from PIL import Image, UnidentifiedImageError

    images = [p for p in sorted(where.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    images = [p for p in images if p.resolve().is_relative_to(policy.root)]  # no symlinks out of the folder
    if not images:
        raise DatasetError(
            f"dataset.path {path!r} is a folder without images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "give a folder of images, one subfolder per class"
        )
    size = sum(p.stat().st_size for p in images)
    _check_size(path, size, policy)
    shapes: Counter[tuple[int, int, int]] = Counter()
    for p in images[:200]:  # a sample of headers is enough for the typical shape
        try:
            with Image.open(p) as im:
                channels = len(im.getbands())
                shapes[(channels, im.height, im.width)] += 1
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"dataset.path {path!r}: {p.relative_to(where)} is not a readable image ({e})") from e
    shape = shapes.most_common(1)[0][0]
    by_class = Counter(p.parent.name for p in images if p.parent != where)
    balance = [msg.ClassCount(label=label, count=n) for label, n in by_class.most_common()]
    summary = f"image folder {_mb(size)}: {len(images):,} images, typical {shape[0]}x{shape[1]}x{shape[2]}"
    if balance:
        summary += f", {len(balance)} classes (subfolders), the largest {balance[0].label!r} at " \
                   f"{balance[0].count / len(images):.0%}"
    return msg.DatasetProfile(
        path=path, format="image_folder", size_bytes=size, rows=len(images), columns=0,
        target_column="", class_balance=balance, sample_shape=list(shape), summary=summary,
    )
