"""`bench show ARCH [settings]`: what a run with these settings would train, without training or loading weights.

The body cut (which modules of the library's model were dropped), the number of features `nf` into the head, the
head's layers, and each parameter group with its parameter count and its learning rate in both phases, all from the
code a run uses: `build_model`'s pieces, `param_groups` as the Learner's splitter, and fastai's own Learner and
optimizer (freeze with train_bn, `set_hypers(lr=slice(lo, hi))` as fit_one_cycle calls it). The body is built on
the meta device (no memory, no init), so any architecture answers in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import RunConfig
from .archs import arch_for
from .timing import synthetic_dls


@dataclass
class Group:
    modules: list[str]      # top-level body modules whose parameters are in the group
    params: int
    phase1_trainable: int   # parameters that train in phase 1 (frozen groups: norm layers only, fastai's train_bn)
    phase1_lr: float        # fit_one_cycle lr_max per group
    phase2_lr: float


@dataclass
class Shown:
    cfg: RunConfig
    family: str
    source: str
    dropped: list[str]      # "name (Type)" of the library model's modules the cut removed
    nf: int
    head: list[str]
    split: str              # how the body is split (e.g. "body[:6] / body[6:]")
    groups: list[Group]
    n_classes: int


def _dropped(before: list, body) -> list[str]:
    """Top-most modules of the full model of which nothing (neither they nor a descendant) is left in the body."""
    kept = {id(m) for m in body.modules()}
    gone = {name for name, m in before if name and id(m) not in kept and
            not any(id(d) in kept for d in m.modules())}
    top = [name for name, _ in before if name in gone and name.rpartition(".")[0] not in gone]
    kinds = dict((name, type(m).__name__) for name, m in before)
    return [f"{name} ({kinds[name]})" for name in top]


def _layer(m) -> str:
    from torch import nn  # deferred, as in describe
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}->{m.out_features}{', bias' if m.bias is not None else ''})"
    if isinstance(m, nn.BatchNorm1d):
        return f"BatchNorm1d({m.num_features}, bias init {m.bias.detach().mean().item():g})"
    if isinstance(m, nn.Dropout):
        return f"Dropout({m.p:g})"
    return type(m).__name__


def _module_names(names: list[str], shared: set[str]) -> list[str]:
    """Distinct top-level modules in order; a module split across groups (timm's `stages`) by its child."""
    out: list[str] = []
    for n in names:
        parts = n.split(".")
        key = ".".join(parts[:2]) if parts[0] in shared and len(parts) > 2 else parts[0]
        if key not in out:
            out.append(key)
    return out


def describe(cfg: RunConfig, n_classes: int = 10) -> Shown:
    import torch  # deferred, with the three below: `bench show` is parsed by the same start-up as `bench list`
    from torch import nn
    from .heads import make_head
    from .learner import Built, make_learner, num_features, param_groups
    spec = arch_for(cfg.arch, cfg.activation, cfg.self_attention)
    with torch.device("meta"):
        full = spec.build(False)
        before = list(full.named_modules())
        body = spec.body(full)
        nf = num_features(body)
    head = make_head(cfg.head, nf, n_classes)  # on the CPU (small), so its BatchNorm init values can be shown
    model = nn.Sequential(body, head)
    split = spec.split(cfg.layer_groups)
    body_groups = [g for g in split(body) if g]
    firsts = [{n.split(".")[0] for n in g} for g in body_groups]
    shared = {k for i, f in enumerate(firsts) for k in f if any(k in o for j, o in enumerate(firsts) if j != i)}
    names = [_module_names(list(g), shared) for g in body_groups] + [["(the new head)"]]
    learn = make_learner(cfg.replace(channels_last="false", precision="fp32"),
                         synthetic_dls(1, 32, 1, 1, torch.device("cpu")), Built(model, spec, "random", nf))
    learn.freeze()  # phase 1, as fit_two_phase: body groups frozen except norm layers (fastai's train_bn)
    learn.opt.set_hypers(lr=cfg.head_lr)
    phase1 = [(sum(p.numel() for p in g if p.requires_grad), h["lr"])
              for g, h in zip(learn.opt.param_lists, learn.opt.hypers)]
    learn.unfreeze()  # phase 2: what fit_one_cycle(lr_max=slice(lo, hi)) hands the optimizer
    learn.opt.set_hypers(lr=slice(cfg.ft_lr_min, cfg.ft_lr_max))
    groups = [Group(mods, sum(p.numel() for p in g), t1, lr1, h["lr"])
              for mods, g, (t1, lr1), h in zip(names, param_groups(model, spec, cfg.layer_groups), phase1,
                                               learn.opt.hypers)]
    return Shown(cfg, spec.family, spec.source, _dropped(before, body), nf, [_layer(m) for m in head],
                 f"{split} / head", groups, n_classes)


def render(s: Shown) -> str:
    c = s.cfg
    extras = "".join(f", {k}={getattr(c, k)}" for k in ("activation", "self_attention", "loss")
                     if getattr(c, k) != getattr(RunConfig, k))
    lines = [f"{c.arch} ({s.family}, {s.source}): {c.head} head, {c.layer_groups} layer groups, {s.n_classes} "
             f"classes{extras}",
             f"body: the library's 1000-class model minus {', '.join(s.dropped) or 'nothing'}; nf = {s.nf}",
             f"head: {' -> '.join(s.head)}",
             f"parameter groups ({s.split}); phase 1 fit_one_cycle({c.head_epochs}, {c.head_lr:g}), phase 2 "
             f"fit_one_cycle({c.ft_epochs}, lr_max=slice({c.ft_lr_min:g}, {c.ft_lr_max:g})):",
             f"  {'group':<6}{'params':>12}  {'phase 1 trains':<26}{'lr':>9}  {'phase 2 lr':>10}  modules"]
    for i, g in enumerate(s.groups):
        trains = "all" if g.phase1_trainable == g.params else f"{g.phase1_trainable:,} (norm layers only)"
        lr1 = f"{g.phase1_lr:.3g}" if g.phase1_trainable else "-"
        lines.append(f"  {i:<6}{g.params:>12,}  {trains:<26}{lr1:>9}  {g.phase2_lr:>10.3g}  {', '.join(g.modules)}")
    total = sum(g.params for g in s.groups)
    p1 = sum(g.phase1_trainable for g in s.groups)
    lines.append(f"  total {total:,} parameters; phase 1 trains {p1:,} ({100 * p1 / total:.1f} %), phase 2 all")
    return "\n".join(lines)

