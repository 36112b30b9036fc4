"""The held-out test set in every layout: test/ beside train/ + valid/, train/ + test/ with --test-set, an is_test
column, a test folder elsewhere. Test images are never in the split, change the fingerprint, and are scored by the
final model (test_accuracy, outcomes with split=test)."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest

from bench.config import ConfigError
from bench.data.dataset import load_dataset
from bench.data.split import load_or_make_split
from conftest import make_image_folder, tiny_config


def _layout(root, sides=("train", "valid", "test"), per_class=(8, 3, 3)):
    for i, (side, n) in enumerate(zip(sides, per_class)):
        make_image_folder(root / side, per_class=n, seed=i)
    return root


def _split_paths(ds, tmp_path) -> set[str]:
    split, _ = load_or_make_split(ds, tiny_config(ds.root, tmp_path / "results"))
    return set(split["path"])


def test_test_folder_beside_train_and_valid_is_the_test_set(tmp_path):
    ds = load_dataset(str(_layout(tmp_path / "ds")))
    assert ds.own_split and len(ds.items) == 33 and int(ds.items["is_valid"].sum()) == 9
    assert len(ds.test) == 9 and ds.test["path"].str.startswith("test/").all()
    assert sorted(ds.test["label"].unique()) == ds.classes
    assert not _split_paths(ds, tmp_path) & set(ds.test["path"])
    assert "test set: 9 images" in ds.roles


def test_train_and_test_alone_validate_on_test_unless_it_is_named_the_test_set(tmp_path):
    root = _layout(tmp_path / "ds", ("train", "test"), (8, 3))
    validating = load_dataset(str(root))
    assert validating.own_split and validating.test.empty and int(validating.items["is_valid"].sum()) == 9
    assert "is the validation set" in validating.roles and "--test-set test" in validating.roles
    held = load_dataset(str(root), test_set="test")  # relative to the dataset's folder
    assert not held.own_split and len(held.items) == 24 and len(held.test) == 9
    assert held.classes == validating.classes  # labels from train/<class>, not "train"
    assert not _split_paths(held, tmp_path) & set(held.test["path"])
    assert held.fingerprint != validating.fingerprint  # another role for test/ is another dataset version
    assert load_dataset(str(root), test_set=str(root / "test")).fingerprint == held.fingerprint
    assert "test set: 9 images" in held.roles


def test_a_table_is_test_column(tmp_path):
    make_image_folder(tmp_path / "imgs", n_classes=2, per_class=8)
    rows = [(f"imgs/class_{c}/img_{i:03d}.png", f"c{c}", i >= 6) for c in range(2) for i in range(8)]
    table = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["path", "label", "is_test"]).to_csv(table, index=False)
    ds = load_dataset(str(table))
    assert not ds.own_split and len(ds.items) == 12 and len(ds.test) == 4
    assert "is_test" not in ds.items.columns
    before = ds.fingerprint
    pd.DataFrame([(p, c, i >= 5) for p, c, i in [(p, c, int(p[-7:-4])) for p, c, _ in rows]],
                 columns=["path", "label", "is_test"]).to_csv(table, index=False)
    assert load_dataset(str(table)).fingerprint != before  # one more image held out: another version
    pd.DataFrame([(p, c, t, t) for p, c, t in rows], columns=["path", "label", "is_valid", "is_test"]).to_csv(
        table, index=False)
    with pytest.raises(ConfigError, match="not both"):
        load_dataset(str(table))


def test_a_test_set_elsewhere_is_held_out_and_in_the_fingerprint(tmp_path):
    root = make_image_folder(tmp_path / "ds", per_class=8)
    make_image_folder(tmp_path / "holdout", per_class=4, seed=5)
    plain = load_dataset(str(root))
    ds = load_dataset(str(root), test_set=str(tmp_path / "holdout"))
    assert len(ds.items) == 24 and len(ds.test) == 12
    assert ds.test["path"].str.startswith("../holdout/class_").all()  # relative to the dataset root
    assert (root / ds.test["path"].iloc[0]).is_file()
    assert ds.fingerprint != plain.fingerprint
    make_image_folder(tmp_path / "holdout", per_class=4, seed=6)  # other test images, same names
    assert load_dataset(str(root), test_set=str(tmp_path / "holdout")).fingerprint != ds.fingerprint


def test_a_test_copy_of_a_training_image_is_dropped_and_unknown_classes_refused(tmp_path):
    root = _layout(tmp_path / "ds")
    shutil.copy(root / "train" / "class_0" / "img_000.png", root / "test" / "class_0" / "copy.png")
    ds = load_dataset(str(root), results_dir=tmp_path / "results")
    assert "test/class_0/copy.png" not in set(ds.test["path"]) and len(ds.test) == 9
    assert "dropped from the test set" in " ".join(ds.duplicates["action"])
    make_image_folder(tmp_path / "other", n_classes=4, per_class=2)  # class_3 was never trained on
    with pytest.raises(ConfigError, match="class 'class_3' of the test set has no training images"):
        load_dataset(str(make_image_folder(tmp_path / "plain", per_class=6)), test_set=str(tmp_path / "other"))


def test_a_second_test_set_and_a_missing_one_are_refused(tmp_path):
    root = _layout(tmp_path / "ds")
    make_image_folder(tmp_path / "holdout", per_class=2)
    with pytest.raises(ConfigError, match="already has its own test set"):
        load_dataset(str(root), test_set=str(tmp_path / "holdout"))
    assert len(load_dataset(str(root), test_set="test").test) == 9  # naming its own test/ is fine
    with pytest.raises(ConfigError, match="test_set: 'nowhere'"):
        load_dataset(str(root), test_set="nowhere")


@pytest.mark.slow
def test_a_run_scores_its_final_model_on_the_test_set(tmp_path):
    from bench.report.outcomes import read_outcomes
    from bench.train.prepare import prepare
    from bench.train.protocol import run
    root = _layout(tmp_path / "ds", ("train", "test"), (10, 4))
    cfg = tiny_config(root, tmp_path / "results", test_set="test", head_epochs=0, n_folds=3)
    p = prepare(cfg)
    assert not p.items["path"].str.startswith("test/").any()  # not in training, not in validation
    row = run(cfg, p)
    out = read_outcomes(tmp_path / "results", row)
    test = out[out["split"] == "test"]
    assert row["test_n"] == len(test) == 12 and test["item"].tolist() == p.dataset.test["path"].tolist()
    assert abs((test["pred"] == test["label"]).mean() - row["test_accuracy"]) < 1e-12
    assert len(out[out["split"] == "valid"]) == row["n_valid"]


def test_the_test_loader_scores_as_validation_does(tmp_path):
    """The test pass (a larger batch, fastai's test_dl) sees the validation transforms: on the validation images it
    gives the validation loader's predictions."""
    import torch
    from bench.data.loaders import make_dls, test_loader
    from bench.train.learner import build_model, make_learner, seed_all
    from bench.train.outcomes import score
    from bench.train.prepare import prepare
    cfg = tiny_config(make_image_folder(tmp_path / "ds", per_class=12), tmp_path / "results")
    p = prepare(cfg)
    seed_all(cfg.seed)
    dls = make_dls(cfg, p.dataset.root, p.items, device=torch.device("cpu"))
    learn = make_learner(cfg, dls, build_model(cfg, n_classes=len(dls.vocab)))
    valid = p.items[p.items["is_valid"]]
    a = score(learn, dls.valid, valid["path"], valid["label"], "valid")
    b = score(learn, test_loader(dls, cfg, p.dataset.root, valid, bs=256), valid["path"], valid["label"], "test")
    assert [r["pred"] for r in a] == [r["pred"] for r in b]
    assert max(abs(x["p_true"] - y["p_true"]) for x, y in zip(a, b)) < 1e-4


def test_a_test_set_given_as_a_table(tmp_path):
    root = make_image_folder(tmp_path / "ds", per_class=8)
    make_image_folder(tmp_path / "held" / "imgs", per_class=3, seed=7)
    rows = [(f"imgs/class_{c}/img_{i:03d}.png", f"class_{c}") for c in range(3) for i in range(3)]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(tmp_path / "held" / "test.csv", index=False)
    ds = load_dataset(str(root), test_set=str(tmp_path / "held" / "test.csv"))
    assert len(ds.items) == 24 and len(ds.test) == 9
    assert ds.test["path"].iloc[0] == "../held/imgs/class_0/img_000.png"
