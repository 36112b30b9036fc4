"""Dataset sources (folders, tables, fastai names, named datasets), odd paths, and the pre-resized cache."""
from __future__ import annotations

import os
import shutil
import sys
import tarfile
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.config import ConfigError
from bench.data.loaders import make_dls
from bench.data.split import load_or_make_split, subsample
from bench.data.dataset import load_dataset
from bench.data.named import named_defaults
from conftest import make_image_folder, tiny_config


def _csv_dataset(tmp_path, leak: bool = False):
    """Images in one flat folder plus labels.csv with the user's own split (paths relative to the CSV)."""
    make_image_folder(tmp_path / "src", n_classes=2, per_class=8)
    (tmp_path / "ds" / "imgs").mkdir(parents=True)
    rows = []
    for c in range(2):
        for i in range(8):
            name = f"imgs/c{c}_{i}.png"
            shutil.copy(tmp_path / "src" / f"class_{c}" / f"img_{i:03d}.png", tmp_path / "ds" / name)
            rows.append((name, f"cat{c}", "true" if i >= 6 else "false"))
    if leak:  # a validation image that is a copy of a training image
        shutil.copy(tmp_path / "ds" / "imgs" / "c0_0.png", tmp_path / "ds" / "imgs" / "leak.png")
        rows.append(("imgs/leak.png", "cat0", "1"))
    pd.DataFrame(rows, columns=["path", "label", "is_valid"]).to_csv(tmp_path / "ds" / "labels.csv", index=False)
    return tmp_path / "ds" / "labels.csv"


def test_csv_keeps_the_users_split(tmp_path):
    csv = _csv_dataset(tmp_path)
    ds = load_dataset(str(csv))
    assert ds.source == "table" and ds.own_split and len(ds.items) == 16
    cfg = tiny_config(csv, tmp_path / "results")
    split, _ = load_or_make_split(ds, cfg)
    valid = set(split.loc[split["is_valid"], "path"])
    assert valid == {f"imgs/c{c}_{i}.png" for c in range(2) for i in (6, 7)}
    assert (tmp_path / "results" / ds.name / "split_own.csv").exists()
    half = subsample(split, 0.5, 0)  # half of each side, not the first half of each class
    assert half["is_valid"].sum() == 2 and (~half["is_valid"]).sum() == 6
    with pytest.raises(ConfigError, match=r"own train/validation split.*fold 0"):
        load_or_make_split(ds, cfg.replace(fold=1))


def test_csv_duplicate_across_the_users_split_is_dropped_from_validation(tmp_path):
    csv = _csv_dataset(tmp_path, leak=True)
    ds = load_dataset(str(csv), results_dir=tmp_path / "results")
    ds.write_report()
    assert "imgs/leak.png" not in set(ds.items["path"])
    dups = pd.read_csv(tmp_path / "results" / ds.name / "duplicates.csv")
    assert dups.set_index("path").loc["imgs/leak.png", "action"].startswith("dropped from validation")


def test_csv_label_change_changes_the_fingerprint(tmp_path):
    csv = _csv_dataset(tmp_path)
    before = load_dataset(str(csv)).fingerprint
    df = pd.read_csv(csv)
    df.loc[0, "label"] = "cat1"
    df.to_csv(csv, index=False)
    assert load_dataset(str(csv)).fingerprint != before


@pytest.mark.parametrize("content, message", [
    ("file,label\na.png,x\n", r"missing path"),
    ("path,label\n,x\n", r"row 2: empty path"),
    ("path,label\na.png,x\na.png,y\n", r"lists 'a.png' more than once"),
    ("path,label,is_valid\na.png,x,maybe\n", r"row 2: is_valid 'maybe'"),
])
def test_bad_tables_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_dataset(str(tmp_path / "t.csv"))


def test_parquet_without_an_engine_says_how_to_fix(tmp_path, monkeypatch):
    for engine in ("pyarrow", "fastparquet"):  # as if neither engine were installed, whatever this machine has
        monkeypatch.setitem(sys.modules, engine, None)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match=r"pip install pyarrow"):
        load_dataset(str(tmp_path / "t.parquet"))


def test_missing_files_listed_in_a_table_are_named_and_refused_unless_skipped(tmp_path, capsys):
    from bench.cli import main
    csv = _csv_dataset(tmp_path)
    for i in range(5):
        os.remove(tmp_path / "ds" / "imgs" / f"c1_{i}.png")
    with pytest.raises(ConfigError, match=r"5 listed file\(s\) that do not exist.*imgs/c1_0.png: missing.*"
                                          r"also imgs/c1_1.png, imgs/c1_2.png and 2 more.*--on-bad-image skip"):
        load_dataset(str(csv))
    results = tmp_path / "results"
    assert main(["run", "--dataset", str(csv), "--results-dir", str(results), "--pretrained", "false"]) == 2
    assert "imgs/c1_0.png" in capsys.readouterr().err and not results.exists()
    ds = load_dataset(str(csv), on_bad_image="skip")  # going on without them, as asked
    assert list(ds.bad["path"]) == [f"imgs/c1_{i}.png" for i in range(5)]
    assert ds.bad["problem"][0].startswith("missing") and "imgs/c1_0.png" in capsys.readouterr().err


def test_train_valid_folders_are_an_own_split(tmp_path):
    for side, n, seed in (("train", 6, 0), ("valid", 2, 1)):
        make_image_folder(tmp_path / "ds" / side, per_class=n, seed=seed)
    make_image_folder(tmp_path / "ds" / "test", n_classes=1, per_class=2)  # unlabelled: ignored
    ds = load_dataset(str(tmp_path / "ds"))
    assert ds.own_split and ds.classes == ["class_0", "class_1", "class_2"]
    assert int(ds.items["is_valid"].sum()) == 6 and len(ds.items) == 24


def test_odd_paths_unicode_spaces_symlinks_hidden(tmp_path):
    root = make_image_folder(tmp_path / "ds", n_classes=2, per_class=5)
    os.rename(root / "class_0", root / "chats été")
    os.rename(root / "chats été" / "img_000.png", root / "chats été" / "ça va 1.png")
    (root / "class_1" / ".hidden.png").write_bytes(b"junk that would be a bad file")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"junk")
    os.symlink(root, root / "class_1" / "loop")  # a link back to the top must not recurse forever
    ds = load_dataset(str(root))
    assert "chats été/ça va 1.png" in set(ds.items["path"])
    assert ds.bad.empty and len(ds.items) == 10


@pytest.fixture
def fastai_home(tmp_path, monkeypatch):
    from fastai.data.external import fastai_cfg
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    fastai_cfg.cache_clear()  # fastai reads FASTAI_HOME once per process
    yield tmp_path / "fastai"
    fastai_cfg.cache_clear()


def test_fastai_name_found_in_fastais_data_folder_offline(tmp_path, fastai_home):
    home = fastai_home
    for seed, side in enumerate(("train", "valid")):
        make_image_folder(home / "data" / "mnist_tiny" / side, n_classes=2, per_class=5, seed=seed)
    ds = load_dataset("mnist_tiny")
    assert ds.name == "mnist_tiny" and ds.source == "fastai" and ds.own_split and len(ds.items) == 20


def test_fastai_archive_is_unpacked_offline(tmp_path, fastai_home):
    home = fastai_home
    make_image_folder(tmp_path / "mnist_tiny", n_classes=2, per_class=5)
    (home / "archive").mkdir(parents=True)
    with tarfile.open(home / "archive" / "mnist_tiny.tgz", "w:gz") as tar:
        tar.add(tmp_path / "mnist_tiny", arcname="mnist_tiny")
    ds = load_dataset("MNIST_TINY")
    assert ds.root == home / "data" / "mnist_tiny" and len(ds.items) == 10


def test_fastai_name_missing_offline_is_a_clear_error(fastai_home):
    with pytest.raises(ConfigError, match=r"'imagenette2-160' is not in .*no network: download https://"):
        load_dataset("imagenette2-160")


def test_unknown_dataset_suggests_names(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean digits"):
        load_dataset("digitz")


def test_named_dataset_file(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "plants", n_classes=2, per_class=5)
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "datasets.yaml").write_text(
        "plants: {source: ../plants, size: 96, profile: quick}\nbroken: {size: 64}\n")
    monkeypatch.setenv("BENCH_DATASETS", str(tmp_path / "exp" / "datasets.yaml"))
    with pytest.raises(ConfigError, match=r"entry 'broken': needs a `source:`"):
        load_dataset("plants")
    (tmp_path / "exp" / "datasets.yaml").write_text("plants: {source: ../plants, size: 96, profile: quick}\n")
    ds = load_dataset("plants")
    assert ds.name == "plants" and len(ds.items) == 10
    assert named_defaults("plants") == {"profile": "quick", "img_size": 96}


def test_bare_relative_source_is_next_to_the_datasets_file(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "exp" / "shapes", n_classes=2, per_class=5)
    (tmp_path / "exp" / "datasets.yaml").write_text("shapes: {source: shapes}\nnums: {source: digits}\n")
    monkeypatch.setenv("BENCH_DATASETS", str(tmp_path / "exp" / "datasets.yaml"))
    monkeypatch.chdir(tmp_path)  # not where the folder is: the file's own folder counts
    ds = load_dataset("shapes")
    assert ds.name == "shapes" and ds.root.resolve() == (tmp_path / "exp" / "shapes").resolve()
    from bench.data.named import named_datasets
    assert named_datasets()["nums"]["source"] == "digits"  # embedded names are not paths


def test_same_basename_in_two_places_gets_two_results_folders(tmp_path):
    results = tmp_path / "results"
    a = make_image_folder(tmp_path / "a" / "photos", n_classes=2, per_class=5, seed=1)
    b = make_image_folder(tmp_path / "b" / "photos", n_classes=2, per_class=6, seed=2)
    ds_a, ds_b = load_dataset(str(a), results_dir=results), load_dataset(str(b), results_dir=results)
    assert ds_a.name != ds_b.name and ds_a.name.startswith("photos-") and ds_b.name.startswith("photos-")
    assert load_dataset(str(tmp_path / "a" / "." / "photos")).name == ds_a.name  # the place, not the spelling
    cfg = tiny_config(a, results)
    split_a, _ = load_or_make_split(ds_a, cfg)
    split_b, _ = load_or_make_split(ds_b, cfg)  # was: "files changed" against a's split file
    assert (len(split_a), len(split_b)) == (10, 12)
    assert {p.name for p in results.iterdir()} == {ds_a.name, ds_b.name}


# --- the article's split and subsample rules
def test_split_and_subsample_follow_the_notebook(tmp_path):
    """An independent re-statement of the notebook: StratifiedKFold(5, shuffle=True, random_state=101) over the
    full dataset in sorted order, fold 0 = validation; then the first int(pct * n) files of each class."""
    from sklearn.model_selection import StratifiedKFold
    root = make_image_folder(tmp_path / "ds", n_classes=3, per_class=41, size=8)
    for i in range(19):  # uneven classes (41, 22, 41), where int and ceil differ: 10 vs 11, 5 vs 6
        os.remove(root / "class_1" / f"img_{i:03d}.png")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    labels = [f.split("/")[0] for f in files]
    valid_idx = next(iter(StratifiedKFold(5, shuffle=True, random_state=101).split(files, labels)))[1]
    valid = {files[i] for i in valid_idx}
    cfg = tiny_config(root, tmp_path / "results")
    split, _ = load_or_make_split(load_dataset(str(root)), cfg)
    assert set(split.loc[split["is_valid"], "path"]) == valid and len(split) == len(files)
    for pct in (0.25, 0.5, 1.0):
        chosen = [f for c in sorted(set(labels)) for f in [g for g in files if g.startswith(c + "/")][
            :int(pct * labels.count(c))]]
        got = subsample(split, pct, 0)
        assert list(got["path"]) == sorted(chosen)
        assert set(got.loc[got["is_valid"], "path"]) == valid & set(chosen)
    assert len(subsample(split, 0.25, 0)) == 10 + 5 + 10


def test_subsample_that_empties_a_class_is_an_error(tmp_path):
    root = make_image_folder(tmp_path / "ds", n_classes=2, per_class=6, size=8)
    split, _ = load_or_make_split(load_dataset(str(root)), tiny_config(root, tmp_path / "results"))
    with pytest.raises(ConfigError, match=r"pct_images: 0.1 of class 'class_0'.*6 file.*at least 0.167"):
        subsample(split, 0.1, 0)


SPLITTER = """
import os, sys, time
from bench.data.dataset import load_dataset
from bench.data.split import load_or_make_split
from conftest import tiny_config
root, results, go = sys.argv[1], sys.argv[2], sys.argv[3]
ds = load_dataset(root)
while not os.path.exists(go):
    time.sleep(0.001)
for r in range(int(sys.argv[4])):  # every process races every other one on each fresh results folder
    print(load_or_make_split(ds, tiny_config(root, f"{results}/{r}"))[1], flush=True)
"""


def test_concurrent_split_creation_agrees(tmp_path):
    """Processes starting on a new dataset at once: one makes the split, the others read it, none sees a split
    file without its metadata (which read as "files changed")."""
    import subprocess
    root = make_image_folder(tmp_path / "ds", n_classes=2, per_class=10, size=8)
    load_dataset(str(root))  # warm the scan cache, so the processes reach the split together
    go, rounds = tmp_path / "go", 200
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", SPLITTER, str(root), str(tmp_path / "r"), str(go), str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    time.sleep(1)
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    hashes = [o.split() for o, _ in outs]
    assert all(len(h) == rounds for h in hashes) and len({x for h in hashes for x in h}) == 1


# --- the pre-resized cache
def _batch(cfg, root, items, presize):
    from bench.train.learner import seed_all
    seed_all(0)
    dls = make_dls(cfg, root, items, device="cpu", presize=presize)
    return dls.one_batch()[0].clone()


def test_cache_gives_the_same_batches_when_nothing_needs_shrinking(tmp_path):
    root = make_image_folder(tmp_path / "ds", n_classes=2, per_class=8, size=24)
    Image.fromarray(np.full((24, 24), 32896, np.uint16)).save(root / "class_0" / "gray16.png")
    cfg = tiny_config(root, tmp_path / "results")  # item_size 32 > 24 px images: cache holds the decoded pixels
    ds = load_dataset(str(root))
    items = subsample(load_or_make_split(ds, cfg)[0], 1.0, 0)
    cached, plain = _batch(cfg, ds.root, items, True), _batch(cfg, ds.root, items, False)
    assert cached.shape == (8, 3, 32, 32) and bool((cached == plain).all())


def test_cache_shrinks_once_and_follows_content(tmp_path):
    from bench.data.presize import cache_folder, presized_files
    root = tmp_path / "ds"
    root.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)).save(root / "a.jpg")
    first = presized_files(root, ["a.jpg"], 64)
    arr = np.load(first[0])
    assert arr.shape == (64, 85, 3) and first[0].startswith(str(cache_folder(64)))
    mtime = os.stat(first[0]).st_mtime_ns
    assert presized_files(root, ["a.jpg"], 64) == first and os.stat(first[0]).st_mtime_ns == mtime  # reused
    Image.new("RGB", (200, 100), (9, 9, 9)).save(root / "a.jpg")  # new content -> a new entry, not the stale one
    second = presized_files(root, ["a.jpg"], 64)
    assert second != first and np.load(second[0]).shape == (64, 128, 3)


@pytest.mark.slow
def test_run_on_a_folder_with_broken_files_trains_and_reports(tmp_path, capsys):
    from bench.cli import main
    root = make_image_folder(tmp_path / "photos", n_classes=2, per_class=8)
    (root / "class_0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "class_1" / "empty.png").write_bytes(b"")
    results = tmp_path / "results"
    rc = main(["run", "--dataset", str(root), "--results-dir", str(results), "--pretrained", "false",
               "--size", "32", "--item-size", "32", "--bs", "8", "--pct", "1", "--head-epochs", "1",
               "--ft-epochs", "1", "--n-folds", "4"])
    assert rc == 0
    assert "skipped 2 bad image file(s)" in capsys.readouterr().err
    runs = pd.read_csv(results / "runs.csv")
    assert list(runs["status"]) == ["ok"] and runs["n_train"][0] + runs["n_valid"][0] == 16
    assert runs["dataset"][0].startswith("photos-")
    assert set(pd.read_csv(results / runs["dataset"][0] / "bad_images.csv")["path"]) == {"class_0/broken.jpg",
                                                                               "class_1/empty.png"}


def test_loaders_give_the_batches_of_fastais_dataframe_pipeline(tmp_path):
    """make_dls feeds fastai (file, label) records instead of the DataFrame (pandas' per-item iloc cost ~0.1 ms an
    image); the batches, labels, vocab and split must be those of fastai's own ColReader/ColSplitter pipeline."""
    from fastai.vision.all import (CategoryBlock, ColReader, ColSplitter, DataBlock, ImageBlock, Normalize,
                                   RandomResizedCrop, aug_transforms, imagenet_stats)
    from bench.data.presize import RGBImage, presized_files
    from bench.train.learner import seed_all
    root = make_image_folder(tmp_path / "ds", n_classes=3, per_class=8, size=40)
    cfg = tiny_config(root, tmp_path / "results", batch_size=4)
    ds = load_dataset(str(root))
    items = subsample(load_or_make_split(ds, cfg)[0], 1.0, 0)
    assert items["is_valid"].any() and not items["is_valid"].all()

    def batches(dls):
        train = [tuple(t.clone() for t in b) for b, _ in zip(dls.train, range(2))]
        return train, [tuple(t.clone() for t in b) for b in dls.valid]

    seed_all(0)  # as a run does before building its loaders (a DataLoader seeds its shuffling when built)
    ours = make_dls(cfg, ds.root, items, device="cpu")
    t_ours, v_ours = batches(ours)
    frame = items.assign(x=presized_files(ds.root, items["path"], cfg.item_size))
    seed_all(0)
    theirs = DataBlock(blocks=(ImageBlock(cls=RGBImage), CategoryBlock), get_x=ColReader("x"),
                       get_y=ColReader("label"), splitter=ColSplitter("is_valid"),
                       item_tfms=RandomResizedCrop(cfg.item_size, min_scale=cfg.min_scale),
                       batch_tfms=[*aug_transforms(size=cfg.img_size), Normalize.from_stats(*imagenet_stats)],
                       ).dataloaders(frame, bs=cfg.batch_size, device="cpu", num_workers=0)
    assert list(ours.vocab) == list(theirs.vocab)
    assert (len(ours.train_ds), len(ours.valid_ds)) == (len(theirs.train_ds), len(theirs.valid_ds))
    t_theirs, v_theirs = batches(theirs)
    for a, b in zip(t_ours + v_ours, t_theirs + v_theirs, strict=True):
        assert all(bool((x == y).all()) for x, y in zip(a, b, strict=True))
