"""`bench` command line: a thin layer that parses, calls the library, prints, and maps errors to exit codes.

Exit codes: 0 ok, 1 a run failed (recorded as a failed row), 2 bad input (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import fields

from .config import ALIASES, PROFILES, ConfigError, RunConfig
from .logs import quiet_libraries

# Subcommands contributed by other modules: each exposes add_cli(subparsers) and keeps heavy imports in its handler.
PLUGINS = ("bench.sweep.cli", "bench.report.build", "bench.train.speed")


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One --flag per RunConfig field (values validated by make_config, so every entry point gives the same
    errors), plus the short aliases used by make (--epochs sets both phases)."""
    g = p.add_argument_group("run settings (defaults: the profile's, see `bench run --help`)")
    for f in fields(RunConfig):
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.name.upper())
    for alias, targets in ALIASES.items():
        g.add_argument("--" + alias, dest=alias, default=None, help=f"sets {', '.join(targets)}")
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="blog = the article's protocol; quick = minutes on a CPU (default for the embedded dataset)")


def config_from_args(ns: argparse.Namespace):
    from .config import make_config
    from .data.named import named_defaults
    names = [f.name for f in fields(RunConfig)] + list(ALIASES)
    overrides = {k: getattr(ns, k) for k in names if getattr(ns, k, None) is not None}
    defaults = named_defaults(overrides.get("dataset", RunConfig.dataset))  # a named dataset's profile and size
    profile = ns.profile or defaults.pop("profile", "blog")
    return make_config(profile, **{**defaults, **overrides})


def cmd_run(ns: argparse.Namespace) -> int:
    from .train.prepare import prepare
    from .train.protocol import run
    cfg = config_from_args(ns)
    prepared = prepare(cfg)  # user errors (arch, dataset, split) before anything trains
    print(f"bench: run {prepared.run_id}: {cfg.arch} on {prepared.dataset.name} ({len(prepared.items)} images, "
          f"{cfg.img_size}px, {cfg.head_epochs}+{cfg.ft_epochs} epochs) -> {cfg.results_dir}/runs.csv",
          file=sys.stderr)
    try:
        row = run(cfg, prepared)
    except ConfigError:
        raise
    except Exception as e:
        from .train.record import one_line
        print(f"bench: run {prepared.run_id} failed: {one_line(e)} (recorded in {cfg.results_dir}/runs.csv)",
              file=sys.stderr)
        return 1
    top = "final_top_k"
    print(f"{row['arch']}: accuracy {float(row['final_accuracy']):.4f} (best {float(row['best_accuracy']):.4f} "
          f"at epoch {row['best_epoch']}), top-{cfg.top_k} {float(row[top]):.4f}, {row['total_seconds']:.0f} s, "
          f"weights {row['weights_used']}, run {row['run_id']}")
    return 0


def cmd_list(ns: argparse.Namespace) -> int:
    from .train.archs import REGISTRY, count_params_1k, get_arch
    from .train.weights import cached_file
    names = list(REGISTRY) + [f"timm:{n}" for n in ns.timm]
    print(f"{'name':<24}{'family':<14}{'source':<13}{'params (1k head)':>17}  pretrained")
    for name in names:
        spec = get_arch(name)
        local = "none published" if spec.weights_tag is None else ("cached" if cached_file(spec) else "not cached")
        print(f"{name:<24}{spec.family:<14}{spec.source:<13}{count_params_1k(spec):>17,}  {local}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one architecture under the two-phase protocol")
    add_config_args(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("list", help="the architecture registry with parameter counts and local weights")
    p.add_argument("--timm", nargs="*", default=[], metavar="NAME", help="also show these timm models")
    p.set_defaults(func=cmd_list)
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
    parser = build_parser()
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
