"""The validation scan on generated folders: bad files, image modes, duplicates, structure errors, invalidation."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.config import ConfigError
from bench.data.dataset import load_dataset
from bench.data.images import open_rgb
from conftest import make_image_folder


def _jpeg_bytes(size=24, color=(200, 30, 30)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (size, size), color).save(b, "JPEG")
    return b.getvalue()


def _add_bad_files(root):
    """One file of each bad kind, in two classes."""
    (root / "class_0" / "empty.png").write_bytes(b"")
    (root / "class_0" / "text.jpg").write_text("<html>404 not found</html>")
    good = (root / "class_1" / "img_000.png").read_bytes()
    (root / "class_1" / "truncated.png").write_bytes(good[: len(good) // 2])
    jpg = _jpeg_bytes()
    (root / "class_1" / "corrupt.jpg").write_bytes(jpg[:200] + b"\x00" * 50 + jpg[250:300])
    return {"class_0/empty.png", "class_0/text.jpg", "class_1/truncated.png", "class_1/corrupt.jpg"}


def test_bad_files_are_reported_and_skipped(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", per_class=6)
    bad = _add_bad_files(root)
    (root / "class_2" / "notes.txt").write_text("not data")
    ds = load_dataset(str(root), results_dir=tmp_path / "results")
    ds.write_report()  # the split writes it, once the dataset is known to be usable
    report = pd.read_csv(tmp_path / "results" / ds.name / "bad_images.csv")
    reported = dict(zip(report["path"], report["problem"]))
    assert bad <= set(reported)
    assert reported["class_0/empty.png"].startswith("empty file")
    assert reported["class_0/text.jpg"].startswith("not an image")
    assert reported["class_1/truncated.png"].startswith(("truncated", "corrupt"))
    assert reported["class_2/notes.txt"].startswith("ignored")
    assert not bad & set(ds.items["path"]) and len(ds.items) == 18
    assert "skipped 4 bad image file(s)" in capsys.readouterr().err
    summary = json.loads((tmp_path / "results" / ds.name / "scan.json").read_text())
    assert (summary["n_bad"], summary["n_good"], summary["fingerprint"]) == (4, 18, ds.fingerprint)


def test_bad_files_fail_when_asked(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=6)
    (root / "class_0" / "empty.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"1 bad image file.*class_0/empty.png: empty file.*--on-bad-image skip"):
        load_dataset(str(root), results_dir=tmp_path / "results", on_bad_image="fail")


def _mode_images() -> dict[str, tuple[Image.Image, tuple[int, int, int]]]:
    """An image per mode with the RGB colour it must come out as."""
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))      # fully transparent black -> the white background
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure cyan-free red
    gray16 = Image.fromarray(np.full((8, 8), 32896, np.uint16))  # 128 * 257: mid grey, not clipped white
    return {"L.png": (Image.new("L", (8, 8), 77), (77, 77, 77)), "P.png": (pal, (10, 200, 30)),
            "RGBA.png": (rgba, (255, 255, 255)), "CMYK.jpg": (cmyk, (255, 0, 0)),
            "I16.png": (gray16, (128, 128, 128)), "LA.png": (Image.new("LA", (8, 8), (50, 255)), (50, 50, 50))}


def test_every_image_mode_decodes_to_the_right_rgb(tmp_path):
    for name, (im, rgb) in _mode_images().items():
        im.save(tmp_path / name)
        out = np.asarray(open_rgb(tmp_path / name))
        assert out.shape == (8, 8, 3) and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - rgb).max() <= 3, (name, out[0, 0], rgb)


def test_mode_images_pass_the_scan(tmp_path):
    root = make_image_folder(tmp_path / "data", n_classes=2, per_class=5)
    for name, (im, _) in _mode_images().items():
        im.save(root / "class_0" / f"mode_{name}")
    ds = load_dataset(str(root))
    assert ds.bad.empty and len(ds.items) == 10 + len(_mode_images())


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=5)
    (root / "class_empty").mkdir()
    with pytest.raises(ConfigError, match=r"class folder .*class_empty has no readable images"):
        load_dataset(str(root))


def test_class_of_only_bad_files_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=5)
    (root / "class_x").mkdir()
    (root / "class_x" / "a.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"class_x has no readable images"):
        load_dataset(str(root))


def test_empty_dataset_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "nothing" / "class_a").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"no image files under .*nothing"):
        load_dataset(str(tmp_path / "nothing"))


def test_one_image_class_is_an_error_naming_the_class(tmp_path):
    from bench.data.split import load_or_make_split
    from conftest import tiny_config
    root = make_image_folder(tmp_path / "data", per_class=6)
    shutil.rmtree(root / "class_2")
    make_image_folder(tmp_path / "one", n_classes=1, per_class=1, seed=7)
    shutil.copytree(tmp_path / "one" / "class_0", root / "lonely")
    ds = load_dataset(str(root))
    with pytest.raises(ConfigError, match=r"class 'lonely' has 1 distinct image.*5-fold"):
        load_or_make_split(ds, tiny_config(root, tmp_path / "results"))


def test_duplicates_land_in_one_fold(tmp_path):
    from bench.data.split import load_or_make_split
    from conftest import tiny_config
    root = make_image_folder(tmp_path / "data", per_class=10)
    copies = []
    for i in range(5):  # copies of the same picture, some relabelled: all must stay together
        dst = root / f"class_{i % 3}" / f"copy_{i}.png"
        shutil.copy(root / "class_0" / "img_000.png", dst)
        copies.append(dst.relative_to(root).as_posix())
    ds = load_dataset(str(root), results_dir=tmp_path / "results")
    ds.write_report()
    dups = pd.read_csv(tmp_path / "results" / ds.name / "duplicates.csv")
    group_paths = set(copies) | {"class_0/img_000.png"}
    assert len(dups) == 5 and dups["duplicate_of"].nunique() == 1  # each later copy points at the first one
    assert set(dups["path"]) | set(dups["duplicate_of"]) == group_paths
    split, _ = load_or_make_split(ds, tiny_config(root, tmp_path / "results"))
    group = split[split["path"].isin(copies + ["class_0/img_000.png"])]
    assert group["fold"].nunique() == 1 and len(group) == 6


def test_changed_file_changes_fingerprint_and_rescans(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=5)
    first = load_dataset(str(root))
    assert load_dataset(str(root)).fingerprint == first.fingerprint
    (root / "class_1" / "img_002.png").write_bytes(b"")  # a file goes bad: the cached verdict must not be reused
    second = load_dataset(str(root))
    assert second.fingerprint != first.fingerprint
    assert list(second.bad["path"]) == ["class_1/img_002.png"]


def test_changed_dataset_makes_the_old_split_an_error(tmp_path):
    from bench.data.split import load_or_make_split
    from conftest import tiny_config
    root = make_image_folder(tmp_path / "data", per_class=6)
    cfg = tiny_config(root, tmp_path / "results")
    load_or_make_split(load_dataset(str(root)), cfg)
    Image.new("RGB", (24, 24), (1, 2, 3)).save(root / "class_0" / "new.png")
    with pytest.raises(ConfigError, match=r"split: .* was made for dataset fingerprint .*move .* aside"):
        load_or_make_split(load_dataset(str(root)), cfg)


def test_random_init_warning_still_shows_after_scanning_a_new_dataset(tmp_path, monkeypatch):
    """The scan decodes in threads; a warnings filter changed there (catch_warnings is not thread-safe) used to stay
    as "ignore everything" and swallow the pretrained=auto fallback warning of the run that followed."""
    import warnings
    from bench.train.archs import get_arch
    from bench.train.weights import load_model
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))  # other tests may have cached resnet18's
    root = make_image_folder(tmp_path / "new", n_classes=2, per_class=300, size=64)
    before = list(warnings.filters)
    load_dataset(str(root))  # a new dataset: every file decoded by the worker threads
    assert warnings.filters == before
    with warnings.catch_warnings(record=True) as seen:  # keeps the filters as they are, records what passes them
        _, used = load_model(get_arch("resnet18"), "auto")
    assert used == "random"
    assert any("pretrained=auto" in str(w.message) and "random init" in str(w.message) for w in seen)


def test_a_dataset_refused_at_its_split_writes_nothing(tmp_path, capsys):
    """A class of 1 image passes the scan but cannot be split 5 ways: exit 2, and no scan report, split or results
    folder is left behind (the report used to be written before the split refused the data)."""
    from bench.cli import main
    root = make_image_folder(tmp_path / "data", per_class=8)
    make_image_folder(tmp_path / "one", n_classes=1, per_class=1)
    (tmp_path / "one" / "class_0").rename(root / "lonely")
    results = tmp_path / "results"
    assert main(["run", "--dataset", str(root), "--results-dir", str(results), "--pretrained", "false"]) == 2
    assert "class 'lonely' has 1 distinct image" in capsys.readouterr().err
    assert not results.exists()
