"""`bench` command line: a thin layer that parses, calls the library, prints, and maps errors to exit codes.

Exit codes: 0 ok, 1 a run failed (recorded as a failed row), 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import fields

from .config import ALIASES, CHOICES, PROFILES, RANGES, ConfigError, RunConfig, make_config
from .console import quiet_libraries, recorded_or_exit
from .train.archs import REGISTRY, get_arch
from .train.budget import parse_budget
from .train.catalog import describe
from .train.show import describe as show, render

# Subcommands contributed by other modules: each exposes add_cli(subparsers) and keeps heavy imports in its handler.
PLUGINS = ("bench.sweep.commands", "bench.report.build", "bench.train.speed")
OWN_COMMANDS = ("run", "list", "show", "check")


def field_help(f, profiles: dict = PROFILES) -> str:
    """What a setting is, its unit and its default (the article's, and each profile's where it differs), from the
    RunConfig field's metadata (help, unit) and the config tables (choices, ranges)."""
    meta = f.metadata or {}
    text = meta.get("help", "").rstrip(".")
    unit = meta.get("unit")
    parts = [text] if text else []
    if unit:
        parts.append(f"in {unit}")
    if f.name in CHOICES:
        parts.append("one of " + " | ".join(CHOICES[f.name]))
    elif f.name in RANGES:
        lo, hi, incl = RANGES[f.name]
        if lo is not None or hi is not None:
            parts.append(" and ".join(([f"{'>=' if incl else '>'} {lo:g}"] if lo is not None else []) +
                                      ([f"<= {hi:.12g}"] if hi is not None else [])))
    def show(v):
        return "auto" if v is None and f.name == "num_workers" else "none" if v in (None, "") else \
            str(v).lower() if isinstance(v, bool) else v
    default = f"default {show(f.default)}"
    default += "".join(f", {name}: {show(prof[f.name])}" for name, prof in profiles.items() if f.name in prof)
    return ("; ".join(parts) + f" ({default})").replace("%", "%%")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One --flag per RunConfig field, in the dataclass's groups, each saying what it is, its unit and default
    (values validated by make_config, so every entry point gives the same errors), plus the short aliases used
    by make (--epochs sets both phases)."""
    groups: dict = {}  # group title -> argparse argument group
    for f in fields(RunConfig):
        title = (f.metadata or {}).get("group", "run settings")
        if title not in groups:
            groups[title] = p.add_argument_group(title)
        metavar = ((f.metadata or {}).get("unit") or str(f.type).split(" ")[0]).upper().replace(" ", "_")
        groups[title].add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=metavar,
                                   help=field_help(f))
    g = p.add_argument_group("shortcuts (as make's variables)")
    for alias, targets in ALIASES.items():
        g.add_argument("--" + alias, dest=alias, default=None, metavar="VALUE", help=f"sets {', '.join(targets)}")
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="blog = the article's protocol (the defaults below); quick = minutes on a CPU (default for "
                        "the embedded digits); the profile's values show as `quick: ...`")


def config_from_args(ns: argparse.Namespace):
    from .data.named import dataset_profile  # deferred: pandas (the named datasets' tables)
    names = [f.name for f in fields(RunConfig)] + list(ALIASES)
    overrides = {k: getattr(ns, k) for k in names if getattr(ns, k, None) is not None}
    # a named dataset's profile and size under the user's flags; --profile wins (shared with experiment files)
    profile, defaults = dataset_profile(overrides.get("dataset", RunConfig.dataset), ns.profile)
    return make_config(profile, **{**defaults, **overrides})


def cmd_run(ns: argparse.Namespace) -> int:
    # deferred: pandas, torch and fastai, which `bench list` and `--help` do without
    from .data.itemsize import warn_upscale
    from .train.prepare import prepare
    from .train.protocol import run
    cfg = config_from_args(ns)
    prepared = prepare(cfg)  # user errors (arch, dataset, split) before anything trains
    print(f"bench: run {prepared.run_id}: {cfg.arch} on {prepared.dataset.name} ({len(prepared.items)} images, "
          f"{cfg.img_size} px batches from {cfg.item_size} px item crops, {cfg.head_epochs}+{cfg.ft_epochs} epochs) "
          f"-> {cfg.results_dir}/runs.csv", file=sys.stderr)
    if prepared.dataset.roles:  # which role test/ plays: validation (picks models) or the held-out test set
        print(f"bench: {prepared.dataset.roles}", file=sys.stderr)
    warn_upscale(cfg, prepared.dataset, prepared.items)
    row, code = recorded_or_exit(f"run {prepared.run_id}", f"{cfg.results_dir}/runs.csv", lambda: run(cfg, prepared))
    if row is not None:
        print(summary_line(row))
    return code


def summary_line(row: dict) -> str:
    """The run's result in one line; top-k names the k really used (capped at n_classes - 1), not the setting."""
    how = (f"{float(row['total_seconds']):.0f} s, {row.get('precision')}, {row.get('memory_format')}, "
           f"weights {row.get('weights_used')}, run {row['run_id']}")
    if row.get("final_accuracy") in (None, ""):
        return f"{row['arch']}: no epochs trained ({how})"
    return (f"{row['arch']}: accuracy {float(row['final_accuracy']):.4f} (best {float(row['best_accuracy']):.4f} "
            f"at epoch {row['best_epoch']}), top-{row['top_k']} {float(row['final_top_k']):.4f}, "
            + (f"test set {float(row['test_accuracy']):.4f} ({row['test_n']} images, in no decision), "
               if row.get("test_n") else "")
            + f"{float(row['train_img_per_s']):.1f} train img/s, {how}")


def cmd_list(ns: argparse.Namespace) -> int:
    specs = [get_arch(n) for n in [*REGISTRY, *(f"timm:{n}" for n in ns.timm)]]  # bad --timm names fail first
    # params_1k: the library's own 1000-class model (its classifier, not bench's head), as the report and
    # `bench speed`'s first figure: published counts compare with it
    print(f"{'name':<24}{'family':<14}{'source':<13}{'params (library 1k)':>20}  pretrained")
    for e in describe(specs):
        print(f"{e['name']:<24}{e['family']:<14}{e['source']:<13}{e['params_1k']:>20,}  {e['pretrained']}")
    return 0


def cmd_show(ns: argparse.Namespace) -> int:
    ns.arch = ns.show_arch or ns.arch
    if not ns.classes.isdigit() or int(ns.classes) < 1:
        raise ConfigError(f"classes: expected a whole number >= 1, got {ns.classes!r}")
    print(render(show(config_from_args(ns), int(ns.classes))))
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    # deferred: pandas and torch, which `bench list` and `--help` do without
    from .train.check import facts, split_facts, summary, timing
    budget = parse_budget(ns.budget)  # a bad budget fails before minutes of scanning
    if ns.spec is not None:
        ns.dataset = ns.spec
    cfg = config_from_args(ns)
    check, ds = facts(cfg)
    prepared = split_facts(check, ds, cfg)
    print("\n".join(summary(check)), flush=True)
    if prepared is None:
        print(f"bench: error: {check.split_error}", file=sys.stderr)
        return 2
    if not ns.no_time:
        print(f"bench: timing a few batches of {cfg.arch} on this machine ...", file=sys.stderr, flush=True)
        timing(check, prepared, budget)
        print("\n".join(check.lines))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; for this module's own commands (OWN_COMMANDS) the plugins are not imported, which keeps
    their start-up free of pandas/scipy (`bench list` answers in about a second)."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one architecture under the two-phase protocol",
                       description="Train one architecture under the two-phase protocol; one row appended to "
                                   "RESULTS_DIR/runs.csv. Every setting below defaults to the `blog` profile's "
                                   "value unless the profile (or a named dataset's profile) says otherwise.")
    add_config_args(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("list", help="the architecture registry with parameter counts and local weights")
    p.add_argument("--timm", nargs="*", default=[], metavar="NAME", help="also show these timm models")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="a dataset before training: classes, baseline, bad files, sizes, time per run",
                       description="Scan a dataset (cached) and print its classes and counts, imbalance, the "
                                   "majority-class accuracy of the validation fold, bad files and duplicates, image "
                                   "sizes; then time a few batches of the run the settings below describe (defaults: "
                                   "what `bench run` uses for this dataset) and print the seconds per epoch, the time "
                                   "per run and the settings that fit --budget. Writes nothing outside the cache.")
    p.add_argument("spec", nargs="?", default=None, metavar="DATASET", help="as --dataset (default: digits)")
    p.add_argument("--budget", default="10min", help="time one run may take, e.g. 10min, 90s, 1h (default 10min)")
    p.add_argument("--no-time", action="store_true", help="the dataset part only: time no batches")
    add_config_args(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("show", help="an architecture's body cut, head and parameter groups with their learning rates",
                       description="What `bench run` with the same settings would train, without training: the body "
                                   "cut, nf, the head, and each parameter group's size and learning rate in both "
                                   "phases (random init on the meta device; nothing is written).")
    p.add_argument("show_arch", nargs="?", default=None, metavar="ARCH", help="registry name or timm:<name>")
    p.add_argument("--classes", default="10", metavar="N", help="classes of the head (default 10, the embedded digits)")
    add_config_args(p)
    p.set_defaults(func=cmd_show)
    if command in OWN_COMMANDS:
        return parser
    for mod in PLUGINS:
        try:
            plugin = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        plugin.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    ns = parser.parse_args(argv)
    try:
        return ns.func(ns)
    except ConfigError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
