"""One identity per run (bench/identity.py): the run id, the plan's "done", the race's reuse and the report's grouping
all come from it. Each case here gave two ids for one run, or one id for two, before it existed."""
from __future__ import annotations

import os
import shutil

import pytest

from bench.identity import (identity, protocol_id, row_identity, run_id, variant_id, describe_protocol, ids,
                            weights_kind)
from conftest import make_image_folder, tiny_config

REALISED = dict(dataset_fingerprint="fp", split_hash="sh", weights="random", memory_format="contiguous",
                device_class="cpu-avx512", threads=2, versions={"torch": "2.14.1", "fastai": "2.8.6",
                                                                "arch_library": "torchvision==0.29.1"})


def _ident(config=None, **realised):
    from bench.config import make_config
    cfg = (config or make_config("quick")).to_dict()
    return identity(cfg, **{**REALISED, **realised})


def test_what_cannot_change_the_numbers_is_not_in_the_identity():
    from bench.config import make_config
    base = make_config("quick")
    same = [base.replace(results_dir="/elsewhere"), base.replace(experiment="x"), base.replace(track="mlflow"),
            base.replace(num_workers=3), base.replace(on_bad_image="fail"), base.replace(dataset="/typed/else"),
            base.replace(pretrained="true"), base.replace(channels_last="false")]  # the last three: realised instead
    assert {run_id(_ident(c)) for c in same} == {run_id(_ident(base))}


@pytest.mark.parametrize("change", [dict(threads=1), dict(weights="torchvision:IMAGENET1K_V1"),
                                    dict(memory_format="channels_last"), dict(device_class="cpu-avx2"),
                                    dict(dataset_fingerprint="other"), dict(split_hash="other"),
                                    dict(versions={**REALISED["versions"], "torch": "2.15.0"}),
                                    dict(versions={**REALISED["versions"], "arch_library": "torchvision==0.30"})])
def test_what_changes_the_numbers_changes_the_run_id(change):
    assert run_id(_ident(**change)) != run_id(_ident())


def test_threads_count_on_a_cpu_only():
    assert run_id(_ident(device_class="cuda:NVIDIA H200", threads=1)) == \
        run_id(_ident(device_class="cuda:NVIDIA H200", threads=2))


def test_seed_and_fold_are_the_instance_and_the_arch_is_the_candidate():
    from bench.config import make_config
    base = make_config("quick")
    a, b = _ident(base), _ident(base.replace(seed=7, fold=2))
    assert run_id(a) != run_id(b) and variant_id(a) == variant_id(b) and protocol_id(a) == protocol_id(b)
    other = _ident(base.replace(arch="seresnet10"), versions={**REALISED["versions"],
                                                              "arch_library": "pytorchcv==0.0.74"})
    assert variant_id(other) != variant_id(a) and protocol_id(other) == protocol_id(a)
    # two archs' ImageNet checkpoints are one kind of weights; random init against ImageNet is another protocol
    lib = _ident(base, weights="torchvision:IMAGENET1K_V1")
    pkg = _ident(base.replace(arch="timm:tf_efficientnet_lite0"), weights="pypi:efficientnet-lite0==0.1.0")
    assert protocol_id(lib) == protocol_id(pkg) != protocol_id(a)
    assert protocol_id(_ident(base.replace(ft_epochs=1))) != protocol_id(a)
    assert [weights_kind(w) for w in ("random", "", "sha256:ab", "timm:in1k")] == ["random", "random", "file",
                                                                                    "imagenet"]


def test_a_protocol_reads_in_words_and_names_what_differs_from_the_article():
    from bench.config import make_config
    words = describe_protocol(_ident(make_config("quick")), "digits")
    assert words.startswith("32 px, 1+4 epochs, random init, 100 % of digits, batch 32")
    assert "ft_lr_min=0.003" in words and "cpu-avx512" in words and "threads=2" in words
    assert describe_protocol(_ident(make_config("quick", ft_epochs=1)), "digits") != words


def test_a_row_carries_its_identity_and_a_legacy_row_never_pools_with_a_current_one():
    ident = _ident()
    row = ids(ident)
    assert row_identity(row) == ident and row["run_id"] == run_id(ident)
    legacy = {"config_json": '{"arch": "resnet18", "seed": 1}', "weights_used": "random", "device": "cpu"}
    assert row_identity(legacy)["identity_version"] == 1 != ident["identity_version"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_one_dataset_under_any_spelling_or_place_is_one_run(tmp_path, monkeypatch):
    """The dataset typed as a path, with a trailing slash, relative, through a symlink or copied elsewhere is one
    content: one run id (a resumed sweep does not retrain it, a report counts it once)."""
    from bench.train.prepare import Resolver
    data = make_image_folder(tmp_path / "data")
    os.symlink(data, tmp_path / "link")
    shutil.copytree(data, tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    spellings = [str(data), str(data) + "/", "data", "./data/", str(tmp_path / "link"), str(tmp_path / "copy")]
    resolver = Resolver(write=False)
    run_ids = {resolver.prepare(tiny_config(s, tmp_path / "results")).run_id for s in spellings}
    assert len(run_ids) == 1


def test_auto_and_false_without_weights_and_auto_and_true_with_them_are_one_run(tmp_path, monkeypatch):
    import torch
    from bench.train.archs import get_arch
    from bench.train.prepare import Resolver
    from bench.train.weights import CACHES
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    data = make_image_folder(tmp_path / "data")
    cfg = tiny_config(data, tmp_path / "results", pretrained="auto")
    offline = {Resolver(write=False).prepare(cfg.replace(pretrained=p)).run_id for p in ("auto", "false")}
    assert len(offline) == 1
    spec = get_arch("resnet18")
    path = CACHES[spec.source][0](spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(spec.build(False).state_dict(), path)
    cached = {Resolver(write=False).prepare(cfg.replace(pretrained=p)).run_id for p in ("auto", "true")}
    assert len(cached) == 1 and cached != offline
    # a weights file is its content, wherever it lies
    other = tmp_path / "elsewhere.pth"
    shutil.copy(path, other)
    by_file = {Resolver(write=False).prepare(cfg.replace(weights=str(w))).run_id for w in (path, other)}
    assert len(by_file) == 1


def test_the_thread_count_is_in_a_cpu_runs_id(tmp_path):
    from bench.train.prepare import Resolver
    data = make_image_folder(tmp_path / "data")
    r = Resolver(write=False)
    one, two = (r.prepare(tiny_config(data, tmp_path / "results", threads=n, device="cpu")) for n in (1, 2))
    assert one.run_id != two.run_id and (one.threads, two.threads) == (1, 2)
