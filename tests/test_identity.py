"""One identity per run (bench/identity.py): the run id, the plan's "done", the race's reuse and the report's grouping
all come from it. Each case here gave two ids for one run, or one id for two, before it existed. The identity is the
experiment instance; the machine that ran it is its context, recorded beside it (issue 23)."""
from __future__ import annotations

import os
import shutil

import pytest

from bench.identity import (identity, protocol_id, row_identity, run_id, variant_id, ids,
                            weights_kind)
from conftest import make_image_folder, tiny_config

REALISED = dict(dataset_fingerprint="fp", split_hash="sh", weights="random", precision="fp32",
                versions={"torch": "2.14.1", "fastai": "2.8.6", "arch_library": "torchvision==0.29.1"})


def _ident(config=None, **realised):
    from bench.config import make_config
    cfg = (config or make_config("quick")).to_dict()
    return identity(cfg, **{**REALISED, **realised})


def test_what_cannot_change_the_numbers_is_not_in_the_identity():
    from bench.config import make_config
    base = make_config("quick")
    same = [base.replace(results_dir="/elsewhere"), base.replace(experiment="x"), base.replace(track="mlflow"),
            base.replace(num_workers=3), base.replace(on_bad_image="fail"), base.replace(dataset="/typed/else"),
            base.replace(pretrained="true"), base.replace(channels_last="false"),  # realised instead
            # the execution context: recorded beside the row, never hashed
            base.replace(threads=1), base.replace(threads=2), base.replace(device="cpu"), base.replace(top_k=3)]
    assert {run_id(_ident(c)) for c in same} == {run_id(_ident(base))}


@pytest.mark.parametrize("change", [dict(weights="torchvision:IMAGENET1K_V1"), dict(precision="bf16"),
                                    dict(dataset_fingerprint="other"), dict(split_hash="other"),
                                    dict(versions={**REALISED["versions"], "torch": "2.15.0"}),
                                    dict(versions={**REALISED["versions"], "arch_library": "torchvision==0.30"})])
def test_what_changes_the_numbers_changes_the_run_id(change):
    assert run_id(_ident(**change)) != run_id(_ident())


def test_a_split_the_dataset_fixes_does_not_depend_on_split_settings():
    from bench.config import make_config
    base = make_config("quick")
    own = {run_id(_ident(c, own_split=True)) for c in (base, base.replace(split_seed=7), base.replace(n_folds=3))}
    assert len(own) == 1
    made = {run_id(_ident(c)) for c in (base, base.replace(split_seed=7), base.replace(n_folds=3))}
    assert len(made) == 3


def test_a_version_2_row_is_found_under_its_version_3_id():
    """Version 2 hashed the machine (device class, threads, memory format) and top_k beside the experiment: its rows
    pool with version 3's once those are dropped, so a continued sweep does not retrain them."""
    import json
    from bench.identity import current_run_id, upgrade
    ident = _ident()
    v2 = {**ident, "identity_version": 2, "device_class": "cpu-avx512", "threads": 1, "memory_format": "contiguous",
          "top_k": 5}
    assert upgrade(v2) == ident and upgrade(ident) == ident
    row = {"run_id": run_id(v2), "identity_json": json.dumps(v2)}
    assert row_identity(row) == ident and current_run_id(row) == run_id(ident) != row["run_id"]
    v1 = {**ident, "identity_version": 1}
    assert run_id(upgrade(v1)) != run_id(ident)


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


def test_the_machine_is_not_in_the_run_id(tmp_path, monkeypatch):
    """Threads, memory format and the CPU are the execution context: `make bench` (all cores) and a sweep (1 thread
    a run), or two machines, plan one instance."""
    import torch
    from bench.train.prepare import Resolver
    data = make_image_folder(tmp_path / "data")
    r = Resolver(write=False)
    one, two = (r.prepare(tiny_config(data, tmp_path / "results", threads=n, device="cpu")) for n in (1, 2))
    assert one.run_id == two.run_id and (one.threads, two.threads) == (1, 2)
    layouts = {r.prepare(tiny_config(data, tmp_path / "results", channels_last=v)).run_id for v in ("true", "false")}
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setenv("BENCH_CPU_MODEL", "Intel Xeon")
    other = Resolver(write=False).prepare(tiny_config(data, tmp_path / "results", threads=1, device="cpu"))
    assert layouts == {one.run_id} == {other.run_id}


def test_the_planned_weights_are_the_loaded_ones_for_an_xresnet_switch(tmp_path, monkeypatch):
    """xresnet50 with self-attention loads xrn50_940 around its attention layer: the identity must name that (it
    named the plain checkpoint, so the run failed its weights check)."""
    import torch
    from bench.train.archs import arch_for, get_arch
    from bench.train.prepare import Resolver
    from bench.train.weights import CACHES, load_model, weights_identity
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    spec = get_arch("xresnet50")
    path = CACHES[spec.source][0](spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": spec.build(False).state_dict()}, path)
    cfg = tiny_config(make_image_folder(tmp_path / "data"), tmp_path / "results", arch="xresnet50",
                      self_attention=True, pretrained="true")
    planned = Resolver(write=False).prepare(cfg).ident["weights"]
    _, used = load_model(arch_for("xresnet50", "relu", True), "true")
    assert planned == weights_identity(used) and "sa" in planned


def test_a_results_folder_continued_on_another_cpu_plans_nothing(tmp_path, monkeypatch):
    """Issue 23's "done when": what one machine finished (rows of this version, or of version 2, which hashed the
    machine) is done on another CPU model and ISA: the second plan has no job."""
    import csv
    import json
    import torch
    from bench.sweep.plan import plan
    data = make_image_folder(tmp_path / "data")
    configs = [tiny_config(data, tmp_path / "results", seed=s) for s in range(3)]
    first = plan(configs, write=False)
    assert len(first.jobs) == 3
    rows = [{"run_id": j["run_id"], "status": "ok", "final_accuracy": "0.5",
             "identity_json": json.dumps(j["identity"])} for j in first.jobs[:2]]
    v2 = {**first.jobs[2]["identity"], "identity_version": 2, "device_class": "cpu-avx512", "threads": 1,
          "memory_format": "contiguous"}
    rows.append({"run_id": run_id(v2), "status": "ok", "final_accuracy": "0.5", "identity_json": json.dumps(v2)})
    (tmp_path / "results").mkdir()
    with open(tmp_path / "results" / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    monkeypatch.setenv("BENCH_CPU_MODEL", "Intel Xeon (another machine)")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    second = plan([c.replace(threads=2) for c in configs], write=False)
    assert second.jobs == [] and sorted(second.done) == sorted(j["run_id"] for j in first.jobs)
