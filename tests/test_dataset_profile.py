"""The task encoder's dataset profiler on real files: CSV, Parquet, image folders, and the refusals."""

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from sustainml.datasets import DataPolicy, DatasetError, profile_dataset


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def policy(root: Path, max_mb: float = 10) -> DataPolicy:
    return DataPolicy.from_params(str(root), max_mb)


def tool_wear(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "spindle_rpm": [1000 + 10 * i for i in range(rows)],
        "feed_mm": [0.1 * (i % 7) if i % 9 else None for i in range(rows)],
        "material": ["steel" if i % 3 else "alu" for i in range(rows)],
        "worn": ["yes" if i % 4 == 0 else "no" for i in range(rows)],
    })


def test_a_csv_is_profiled_rows_columns_types_missing_and_class_balance(data: Path):
    tool_wear().to_csv(data / "wear.csv", index=False)
    p = profile_dataset("wear.csv", policy=policy(data))
    assert (p.format, p.rows, p.columns, p.target_column) == ("csv", 40, 4, "worn")
    assert p.size_bytes == (data / "wear.csv").stat().st_size
    by_name = {c.name: c for c in p.column_profiles}
    assert by_name["feed_mm"].missing == 5 and by_name["feed_mm"].dtype == "float64"
    assert by_name["spindle_rpm"].distinct == 40
    assert p.missing_values == 5
    assert {(c.label, c.count) for c in p.class_balance} == {("no", 30), ("yes", 10)}
    assert p.sample_shape == [3]
    assert "40 rows x 4 columns" in p.summary and "'no' at 75%" in p.summary


def test_a_named_target_column_and_a_semicolon_separated_file(data: Path):
    tool_wear().to_csv(data / "wear.csv", index=False, sep=";")
    p = profile_dataset("wear.csv", policy=policy(data), target_column="material")
    assert p.columns == 4 and p.target_column == "material"
    assert {c.label for c in p.class_balance} == {"steel", "alu"}
    with pytest.raises(DatasetError, match="target_column 'wear' is not a column .* spindle_rpm"):
        profile_dataset("wear.csv", policy=policy(data), target_column="wear")


def test_a_regression_target_has_no_class_balance(data: Path):
    pd.DataFrame({"x": range(30), "y": [i * 0.37 for i in range(30)]}).to_csv(data / "r.csv", index=False)
    p = profile_dataset(str(data / "r.csv"), policy=policy(data))  # an absolute path inside the folder
    assert p.class_balance == [] and "30 distinct values" in p.summary


def test_parquet_is_read_with_pyarrow(data: Path):
    tool_wear().to_parquet(data / "wear.parquet")
    p = profile_dataset("wear.parquet", policy=policy(data))
    assert (p.format, p.rows, p.columns, p.missing_values) == ("parquet", 40, 4, 5)


def test_a_folder_of_images_counts_classes_from_subfolders_and_reads_only_headers(data: Path):
    for label, n in (("crab", 3), ("sponge", 1)):
        (data / "seabed" / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (64, 48), (i, 0, 0)).save(data / "seabed" / label / f"{i}.png")
    p = profile_dataset("seabed", policy=policy(data))
    assert (p.format, p.rows, p.sample_shape) == ("image_folder", 4, [3, 48, 64])
    assert [(c.label, c.count) for c in p.class_balance] == [("crab", 3), ("sponge", 1)]


def test_a_zero_byte_file_is_refused(data: Path):
    (data / "empty.csv").touch()
    with pytest.raises(DatasetError, match=r"'empty.csv' is empty \(0 bytes\)"):
        profile_dataset("empty.csv", policy=policy(data))


def test_a_binary_file_named_csv_is_refused(data: Path):
    (data / "photo.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DatasetError, match=r"'photo.csv' is not a text CSV \(binary data at byte 0\)"):
        profile_dataset("photo.csv", policy=policy(data))
    (data / "latin1.csv").write_bytes("a,b\n1,\xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="is not UTF-8 text"):
        profile_dataset("latin1.csv", policy=policy(data))


def test_paths_outside_the_data_folder_are_refused_symlinks_included(data: Path, tmp_path: Path):
    outside = tmp_path / "secret.csv"
    tool_wear().to_csv(outside, index=False)
    for path in (str(outside), "../secret.csv", "/etc/passwd"):
        with pytest.raises(DatasetError, match="is outside the allowed data folder"):
            profile_dataset(path, policy=policy(data))
    os.symlink(outside, data / "link.csv")
    with pytest.raises(DatasetError, match="'link.csv' is outside the allowed data folder"):
        profile_dataset("link.csv", policy=policy(data))


def test_pickles_are_never_opened_and_unknown_formats_are_named(data: Path):
    (data / "model.pkl").write_bytes(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")  # would run code if unpickled
    with pytest.raises(DatasetError, match=r"\.pkl files can run code when loaded and are never opened"):
        profile_dataset("model.pkl", policy=policy(data))
    (data / "data.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DatasetError, match=r"unknown format '\.xlsx'; give a CSV"):
        profile_dataset("data.xlsx", policy=policy(data))
    (data / "fake.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="is not a Parquet file"):
        profile_dataset("fake.parquet", policy=policy(data))


def test_files_over_the_size_limit_are_refused(data: Path):
    tool_wear(20_000).to_csv(data / "big.csv", index=False)
    with pytest.raises(DatasetError, match=r"'big.csv' is 44\d KiB, over the 102 KiB limit"):
        profile_dataset("big.csv", policy=policy(data, max_mb=0.1))


def test_missing_paths_and_header_only_files(data: Path):
    with pytest.raises(DatasetError, match="'nope.csv' does not exist under the data folder"):
        profile_dataset("nope.csv", policy=policy(data))
    (data / "header.csv").write_text("a,b,c\n")
    with pytest.raises(DatasetError, match="has no data rows"):
        profile_dataset("header.csv", policy=policy(data))


def test_an_unchanged_file_is_read_once_and_a_changed_one_again(data: Path, monkeypatch):
    from sustainml import datasets as dataset_profile

    tool_wear().to_csv(data / "wear.csv", index=False)
    reads = []
    real_read = dataset_profile._read_csv
    monkeypatch.setattr(dataset_profile, "_read_csv", lambda *a: reads.append(a) or real_read(*a))
    first = profile_dataset("wear.csv", policy=policy(data))
    first.rows = -1  # a caller changing its copy must not change what is remembered
    again = profile_dataset("wear.csv", policy=policy(data))
    assert len(reads) == 1 and again.rows == 40
    tool_wear(50).to_csv(data / "wear.csv", index=False)
    assert profile_dataset("wear.csv", policy=policy(data)).rows == 50 and len(reads) == 2
