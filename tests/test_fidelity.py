"""The article's protocol, exactly: fastai's own layer groups, the author's custom split, fastai's head against the
manual one, the SOTA xResNet's switches, the item size, and the 44 runs of the reference file in experiments/blog.yaml.
Splits are checked on every registry entry built on the meta device (no memory, no init: seconds for all)."""
from __future__ import annotations

import csv
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError, RunConfig, make_config
from bench.train.archs import REGISTRY, arch_for, get_arch
from bench.train.heads import make_head
from bench.train.learner import num_features, param_groups

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "bench" / "report" / "reference" / "blog_results.csv"
NAMES = sorted(REGISTRY) + ["timm:resnet10t"]


@pytest.fixture(scope="module")
def meta():
    cache = {}

    def get(name):
        if name not in cache:
            spec = get_arch(name)
            with torch.device("meta"):
                full = spec.build(False)
                body = spec.body(full)
                model = torch.nn.Sequential(body, make_head("fastai", num_features(body), 10))
            cache[name] = spec, full, model
        return cache[name]
    return get


def fastai_splitter(spec):
    """The splitter fastai's vision_learner would use: model_meta's for its ResNets/xResNets, else default_split."""
    from fastai.vision import models
    from fastai.vision.learner import default_split, model_meta
    fn = {"torchvision": getattr(models, spec.name, None),
          "fastai": getattr(models.xresnet, spec.name.removesuffix("_sa"), None)}.get(spec.source)
    return model_meta.get(fn, {"split": default_split})["split"]


def ids(groups):
    return [[id(p) for p in g] for g in groups]


@pytest.mark.parametrize("name", NAMES)
def test_default_groups_are_fastais_own_split(name, meta):
    spec, _, model = meta(name)
    ours, theirs = param_groups(model, spec, "default"), list(fastai_splitter(spec)(model))
    assert [sum(p.numel() for p in g) for g in ours] == [sum(p.numel() for p in g) for g in theirs]
    assert ids(ours) == ids(theirs)
    assert len(ours) == (3 if spec.source in ("torchvision", "fastai") else 2)


# Modules of the library's full model in the first custom group: the author's split (pytorchcv, geffnet, from the
# notebooks) and the same rule, stem + first two stages, for the families the author never split.
AUTHOR_FIRST = {
    "pytorchcv": lambda m: [m.features[:3]],                    # init block, stage 1, stage 2
    "geffnet": lambda m: [m.as_sequential()[:7]],               # conv_stem, bn1, act1, blocks 0-3
    "torchvision": lambda m: [m.conv1, m.bn1, m.layer1, m.layer2],
    "fastai": lambda m: list(m)[:6],                            # 3 stem ConvLayers, max pool, stages 1-2
    # timm's stem group + two stages: resnet10t, and the EfficientNet-Lites (conv_stem, bn1, block stages 0-1)
    "timm": lambda m: [m.conv1, m.bn1, m.layer1, m.layer2] if hasattr(m, "layer1") else
    [m.conv_stem, m.bn1, m.blocks[0], m.blocks[1]],
}


@pytest.mark.parametrize("name", NAMES)
def test_custom_groups_are_the_authors_split(name, meta):
    spec, full, model = meta(name)
    first = {id(p) for mod in AUTHOR_FIRST[spec.source](full) for p in mod.parameters()}
    rest = [p for p in model[0].parameters() if id(p) not in first]
    groups = param_groups(model, spec, "custom")
    assert len(groups) == 3
    assert {id(p) for p in groups[0]} == first and ids(groups[1:2]) == ids([rest])
    assert ids(groups[2:]) == ids([list(model[1].parameters())])


def test_custom_split_share_matches_the_article(meta):
    """seresnet50: the author's first group is 6.2 % of the body (a stem-only group would be 0.04 %)."""
    spec, _, model = meta("seresnet50")
    first, rest = (sum(p.numel() for p in g) for g in param_groups(model, spec, "custom")[:2])
    assert first / (first + rest) == pytest.approx(0.0616, abs=5e-4)


def test_fastai_and_manual_heads_differ_only_in_batchnorm_bias_init():
    """create_head's BatchNorms start with bias 1e-3 (fastai's BatchNorm), the manual head's with 0; with the same
    seed every other initial value is equal, so the two runs differ from the first step on because of the bias."""
    torch.manual_seed(0)
    auto = make_head("fastai", 16, 4).state_dict()
    torch.manual_seed(0)
    manual = make_head("manual", 16, 4).state_dict()
    assert auto.keys() == manual.keys()
    biases = [k for k in auto if k.endswith(".bias")]
    assert len(biases) == 2
    for k in auto:
        if k in biases:
            assert torch.all(auto[k] == 1e-3) and torch.all(manual[k] == 0), k
        else:
            assert torch.equal(auto[k], manual[k]), k


def test_sota_xresnet_switches_build_fastais_modules():
    from fastai.layers import SimpleSelfAttention
    spec = arch_for("xresnet50", "mish", True)
    with torch.device("meta"):
        model = spec.build(False)
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.Mish in kinds and torch.nn.ReLU not in kinds and SimpleSelfAttention in kinds
    assert sum(p.numel() for p in model.parameters()) == 25_576_264 + 256 * 256 + 1  # + SimpleSelfAttention(256)
    assert spec.weights_tag == "xrn50_940+random_sa"  # fastai loads its checkpoint around the attention layer
    plain = arch_for("xresnet50")
    assert plain is get_arch("xresnet50") and plain.weights_tag == "xrn50_940"
    with pytest.raises(ConfigError, match="xresnet"):
        arch_for("resnet50", "mish")


def test_sota_xresnet_loads_fastais_checkpoint_around_the_attention_layer():
    """As fastai did for the article (strict=False): every xrn50_940 tensor is loaded, only SimpleSelfAttention's
    stay at their init, and the weights tag says so."""
    from bench.train.weights import CACHES, load_model
    plain = get_arch("xresnet50")
    torch.manual_seed(1)
    sd = plain.build(False).state_dict()
    path = CACHES["fastai"][0](plain)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": sd}, path)
    model, used = load_model(arch_for("xresnet50", "mish", True), "true")
    assert used == "fastai:xrn50_940+random_sa (cache)"
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())
    from fastai.layers import SimpleSelfAttention
    sa = [n for n, m in model.named_modules() if isinstance(m, SimpleSelfAttention)]
    assert len(sa) == 1 and set(got) - set(sd) == {k for k in got if k.startswith(sa[0] + ".")} != set()


def test_loss_settings_are_fastais():
    from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
    from bench.train.learner import Built, make_learner
    from bench.train.timing import synthetic_dls
    spec = get_arch("resnet18")
    with torch.device("meta"):
        body = spec.body(spec.build(False))
        model = torch.nn.Sequential(body, make_head("fastai", 512, 10))
    dls = synthetic_dls(1, 32, 1, 1, torch.device("cpu"))
    for loss, kind in (("cross_entropy", CrossEntropyLossFlat), ("label_smoothing", LabelSmoothingCrossEntropy)):
        learn = make_learner(make_config(loss=loss), dls, Built(model, spec, "random", 512))
        assert type(learn.loss_func) is kind


def test_defaults_are_the_articles():
    cfg = RunConfig()
    assert (cfg.head, cfg.layer_groups, cfg.seed, cfg.split_seed) == ("fastai", "default", 101, 101)
    assert (cfg.img_size, cfg.item_size, cfg.batch_size, cfg.pct_images) == (224, 512, 64, 0.25)
    assert (cfg.activation, cfg.self_attention, cfg.loss) == ("relu", False, "cross_entropy")


@pytest.mark.parametrize("profile,size,item", [("blog", 448, 512), ("blog", 160, 512), ("blog", 600, 600),
                                               ("quick", 160, 160), ("quick", 32, 32)])
def test_item_size_is_the_profiles_whatever_img_size(profile, size, item):
    assert make_config(profile, size=size).item_size == item
    assert make_config(profile, img_size=size, item_size=700).item_size == 700  # an explicit item size stays


def test_size_on_the_default_digits_is_accepted():
    """`bench run --arch resnet50 --size 160` (quick profile, 72-px items) used to exit 2."""
    from bench.cli import build_parser, config_from_args
    ns = build_parser("run").parse_args(["run", "--arch", "resnet50", "--size", "160"])
    cfg = config_from_args(ns)
    assert (cfg.arch, cfg.img_size, cfg.item_size) == ("resnet50", 160, 160)


@pytest.mark.parametrize("settings,message", [
    (dict(head="custom"), "now called 'manual'"),
    (dict(arch="resnet50", activation="mish"), "only the xresnet family"),
    (dict(arch="seresnet50", self_attention=True), "only the xresnet family"),
    (dict(arch="xresnet50", activation="gelu"), "not one of relu, mish"),
    (dict(loss="focal"), "not one of cross_entropy, label_smoothing"),
])
def test_protocol_settings_are_checked(settings, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**settings)


def test_xresnet_switches_accepted_on_the_family():
    assert make_config(arch="xresnet50_sa", activation="mish").activation == "mish"
    assert make_config(arch="xresnet18", self_attention="true").self_attention is True


def test_every_setting_has_help_in_a_section():
    sections = {"what to train", "data", "protocol", "optimizer", "execution"}
    for f in fields(RunConfig):
        assert len(f.metadata.get("help", "")) > 20, f.name
        assert f.metadata.get("group") in sections, f.name
    assert {f.metadata["group"] for f in fields(RunConfig)} == sections


def _reference_rows():
    with open(REFERENCE, newline="") as f:
        return list(csv.DictReader(f))


def test_reference_file_is_the_shared_one():
    shared = ROOT.parent / "shared" / "reference" / "blog_results.csv"
    if not shared.is_file():
        pytest.skip("no shared reference folder beside the checkout")
    assert REFERENCE.read_bytes() == shared.read_bytes()


def test_blog_experiment_holds_the_44_article_runs():
    from bench.sweep.experiment import load_experiment
    exp = load_experiment(ROOT / "experiments" / "blog.yaml")
    key = lambda arch, head, groups, size, bs: (arch, head, groups, int(size), int(bs))
    ours = Counter(key(c.arch, c.head, c.layer_groups, c.img_size, c.batch_size) for c in exp.configs)
    ref = _reference_rows()
    assert len(ref) == 44 and len(exp.configs) == 44
    assert ours == Counter(key(r["arch"], r["head"], r["layer_groups"], r["img_size"], r["batch_size"]) for r in ref)
    assert {(c.seed, c.split_seed, c.fold, c.pct_images, c.item_size) for c in exp.configs} == {(101, 101, 0, .25, 512)}
    from bench.identity import settings
    assert len({repr(sorted(settings(c.to_dict()).items())) for c in exp.configs}) == 44, \
        "two entries resolve to the same run"
    sota = [c for c in exp.configs if c.self_attention]
    assert [(c.arch, c.batch_size, c.activation, c.loss) for c in sota] == \
        [("xresnet50", 56, "mish", "label_smoothing")]
    assert all(c.loss == "cross_entropy" and c.activation == "relu" for c in exp.configs if c not in sota)


# --- bench show: the groups and learning rates a run would use, from fastai's own optimizer


def test_show_resnet50_groups_and_learning_rates():
    from torchvision.models import resnet50
    from bench.train.show import describe
    s = describe(make_config("blog", arch="resnet50"), n_classes=10)
    assert s.nf == 2048 and s.dropped == ["avgpool (AdaptiveAvgPool2d)", "fc (Linear)"]
    assert s.head[2] == "BatchNorm1d(4096, bias init 0.001)" and s.head[-1] == "Linear(512->10)"
    with torch.device("meta"):
        tv = resnet50()
    count = lambda *mods: sum(p.numel() for m in mods for p in m.parameters())
    bn = lambda *mods: sum(p.numel() for m in mods for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)
                           for p in x.parameters())
    first, second = (tv.conv1, tv.bn1, tv.layer1, tv.layer2), (tv.layer3, tv.layer4)
    assert [g.params for g in s.groups[:2]] == [count(*first), count(*second)]
    assert [g.phase1_trainable for g in s.groups[:2]] == [bn(*first), bn(*second)], "frozen: BatchNorm trains"
    assert s.groups[2].phase1_trainable == s.groups[2].params, "the head trains in phase 1"
    assert [g.phase1_lr for g in s.groups] == [1e-2] * 3
    # fit_one_cycle(lr_max=slice(1e-5, 1e-4)) over three groups: geometric steps
    assert [g.phase2_lr for g in s.groups] == pytest.approx([1e-5, 10 ** -4.5, 1e-4], rel=1e-9)
    assert s.groups[0].modules == ["conv1", "bn1", "layer1", "layer2"]


def test_show_cli_custom_split(capsys):
    from bench.cli import main
    assert main(["show", "seresnet50", "--layer-groups", "custom", "--profile", "blog", "--classes", "517"]) == 0
    out = capsys.readouterr().out
    assert "minus features.final_pool (AvgPool2d), output (Linear); nf = 2048" in out
    rows = [l.split(None, 2) for l in out.splitlines() if l.strip()[:1].isdigit()]
    assert [r[:2] for r in rows] == [["0", "1,603,568"], ["1", "24,435,456"], ["2", "2,371,072"]]
    # phase-2 lr_max, then the group's modules
    assert all(r[2].endswith(end) for r, end in zip(rows, ("1e-05  init_block, stage1, stage2",
                                                        "3.16e-05  stage3, stage4", "0.0001  (the new head)")))
    assert "Linear(512->517)" in out


# --- end to end on tiny data: what the author's runs show


def _phases(results_dir, row):
    from bench.files import read_rows
    rows = [r for r in read_rows(results_dir / row["epoch_log"]) if r["attempt"] == row["attempt"]]
    return {p: [(r["train_loss"], r["valid_loss"], r["accuracy"]) for r in rows if r["phase"] == p]
            for p in ("1", "2")}


@pytest.mark.slow
def test_phase1_identical_between_default_and_custom_groups(tiny_folder, results_dir):
    """In the reference every run and its custom-split twin share their phase-1 figures: the grouping only
    matters once phase 2 spreads its learning rates. seresnet10: body / head vs features[:3] / rest / head."""
    from conftest import tiny_config
    from bench.train.protocol import run
    cfg = tiny_config(tiny_folder, results_dir, arch="seresnet10", seed=5)
    a, b = _phases(results_dir, run(cfg)), _phases(results_dir, run(cfg.replace(layer_groups="custom")))
    assert a["1"] and a["1"] == b["1"]
    assert a["2"] != b["2"], "phase 2 differs: the groups get different learning rates"


@pytest.mark.slow
def test_phase2_learning_rates_per_group_in_a_real_fit(tiny_folder, results_dir):
    from fastai.callback.core import Callback
    from conftest import tiny_config
    from bench.data.loaders import make_dls
    from bench.train.learner import build_model, make_learner, seed_all
    from bench.train.prepare import prepare
    from bench.train.protocol import fit_two_phase

    class GroupLrs(Callback):
        def __init__(self):
            self.seen = {1: [], 2: []}

        def after_batch(self):
            if self.training:
                self.seen[self.run_phase].append([h["lr"] for h in self.opt.hypers])

    cfg = tiny_config(tiny_folder, results_dir, arch="seresnet10", layer_groups="custom", ft_lr_min=1e-5,
                      ft_lr_max=1e-4)
    p = prepare(cfg)
    seed_all(cfg.seed)
    dls = make_dls(cfg, p.dataset.root, p.items)
    log = GroupLrs()
    log.run_phase = 1
    learn = make_learner(cfg, dls, build_model(cfg, len(dls.vocab)), cbs=[log])
    fit_two_phase(learn, cfg, logger=log)
    assert log.seen[1] and all(len(set(step)) == 1 for step in log.seen[1]), "phase 1: one lr for every group"
    assert log.seen[2] and all(len(step) == 3 for step in log.seen[2])
    for lo, mid, hi in log.seen[2]:
        assert mid / lo == pytest.approx(10 ** 0.5) and hi / mid == pytest.approx(10 ** 0.5)
        assert hi <= 1e-4 * (1 + 1e-9)


@pytest.mark.slow
def test_manual_and_fastai_heads_differ_from_the_first_epoch(tiny_folder, results_dir):
    from conftest import tiny_config
    from bench.train.protocol import run
    cfg = tiny_config(tiny_folder, results_dir, seed=5, head_epochs=1, ft_epochs=0)
    auto, manual = (_phases(results_dir, run(cfg.replace(head=h)))["1"] for h in ("fastai", "manual"))
    assert auto[0][0] != manual[0][0], "train loss of epoch 1"
    assert auto == _phases(results_dir, run(cfg))["1"], "the same head twice gives the same numbers"
