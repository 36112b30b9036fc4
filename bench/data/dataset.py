"""Any dataset spec -> a validated `Dataset` (root + sorted item table + content fingerprint).

A spec is an embedded name (scikit-learn's digits, materialised once as a class folder so it takes the user's code
path), a name declared in experiments/datasets.yaml, a folder, a CSV/TSV/parquet table, or a fastai `URLs` name.
Every file is scanned (scan.py) before anything trains; bad files are skipped or fatal (`on_bad_image`), and the
report lands next to the dataset's results.
"""
from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import ConfigError
from .digits import EMBEDDED
from .named import datasets_file, named_datasets
from .scan import duplicates, fingerprint_of, inspect, write_report
from . import testset
from .sources import TABLE_EXTS, fetch_fastai, list_folder, read_table


@dataclass
class Dataset:
    name: str
    root: Path
    items: pd.DataFrame      # path (relative to root, posix), label, sha; is_valid for an own split; sorted by path
    fingerprint: str = ""
    source: str = "folder"   # embedded | folder | table | fastai
    bad: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "problem"]))
    duplicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the held-out test set (bench.data.testset): path (relative to root), label, sha; in no split, no decision
    test: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "label", "sha"]))
    roles: str = ""          # what the run's start line says about test/ and the test set
    # the scan report (folder, bad files, duplicates, summary) not written yet: `write_report` writes it once the
    # split is made, so that a dataset refused anywhere before that leaves nothing behind
    pending_report: tuple | None = field(default=None, repr=False)

    def write_report(self) -> None:
        """bad_images.csv, duplicates.csv and scan.json under results_dir/<name>/ (load_dataset's results_dir)."""
        if self.pending_report is not None:
            write_report(*self.pending_report)
            self.pending_report = None

    @property
    def classes(self) -> list[str]:
        return sorted(self.items["label"].unique())

    @property
    def own_split(self) -> bool:
        """The source says which images are for validation (a table's is_valid, or train/ + valid/ folders)."""
        return "is_valid" in self.items.columns


def located_name(base: str, path: Path) -> str:
    """A folder or table's results name: its basename plus a short hash of where it is, so two folders both called
    `photos` never share a results folder (and a split file); names from datasets.yaml, fastai and the embedded
    data are unique already and keep their names."""
    return f"{base}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"


def resolve(spec: str, _name: str | None = None,
            test_set: str | None = None) -> tuple[str, str, Path, pd.DataFrame, list[str], pd.DataFrame]:
    """spec -> (name, source kind, root, items, class folders, ignored files); nothing is decoded yet. `test_set`
    naming the dataset's own test/ folder holds it out (bench.data.testset)."""
    no_ignored = pd.DataFrame(columns=["path", "problem"])
    folder = lambda root: list_folder(root, testset.holds_own_test(test_set, root))  # noqa: E731
    if spec in EMBEDDED:
        root = EMBEDDED[spec]()
        return (_name or spec, "embedded") + (root,) + folder(root)
    named = named_datasets()
    if spec in named and _name is None:
        return resolve(named[spec]["source"], _name=spec, test_set=test_set)
    path = Path(spec).expanduser()
    if path.is_dir():
        return (_name or located_name(path.resolve().name, path), "folder", path) + folder(path)
    if path.is_file():
        if path.suffix.lower() not in TABLE_EXTS:
            raise ConfigError(f"dataset: {path} is a file but not a table ({', '.join(sorted(TABLE_EXTS))}); give "
                              f"a folder of class subfolders or a CSV of path,label[,is_valid]")
        name = _name or located_name(f"{path.resolve().parent.name}-{path.stem}", path)
        return name, "table", path.parent, read_table(path), [], no_ignored
    fetched = fetch_fastai(spec) if os.sep not in spec else None
    if fetched:
        stem, root = fetched
        return (_name or stem, "fastai", root) + folder(root)
    from difflib import get_close_matches
    names = list(dict.fromkeys([*EMBEDDED, *named]))
    close = get_close_matches(spec, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"dataset: {spec!r} is not an existing folder or CSV/parquet file, a name in "
                      f"{datasets_file()} ({', '.join(names)}), nor a fastai URLs name "
                      f"(e.g. imagenette2-160){hint}")


def tell_once(line: str) -> None:
    """A dataset note (duplicates, skipped files) said once: a race plans (and loads the dataset) every round, and
    every sweep worker loads it again. What was said is kept in BENCH_TOLD, which the workers inherit (the executors
    pass BENCH_* on), so neither a later round nor a worker repeats it."""
    import hashlib
    key = hashlib.sha1(line.encode()).hexdigest()[:12]
    told = os.environ.get("BENCH_TOLD", "")
    if key not in told.split(","):
        os.environ["BENCH_TOLD"] = f"{told},{key}" if told else key
        print(line, file=sys.stderr)


def load_dataset(spec: str, results_dir: str | Path | None = None, on_bad_image: str = "auto",
                 test_set: str | None = None, quiet: bool = False) -> Dataset:
    """Resolve, scan every file (cached per file), apply the bad-file policy (`bad_files`) and the structural
    checks; the report for results_dir/<name>/ is kept on the Dataset (`write_report`: the split writes it). Every
    problem found here is a ConfigError naming the class or path. `quiet`: no notes on stderr (`bench check`).
    `test_set`: a held-out test set (bench.data.testset), scanned and checked with the rest."""
    name, kind, root, items, class_dirs, ignored = resolve(spec, test_set=test_set)
    items, ignored = testset.with_test(items, ignored, test_set, Path(root))
    if items.empty:
        raise ConfigError(f"dataset: no image files under {root} (expected {root}/<class>/<image>, or a table of "
                          f"path,label)")
    scanned = inspect(root, items["path"].tolist(), desc=f"scanning {name}")
    extra = items.drop(columns="path").astype(str).to_csv(index=False) if kind == "table" else ""
    fp = fingerprint_of(scanned, extra + testset.fingerprint_text(items))
    merged = items.merge(scanned[["path", "sha", "problem"]], on="path", validate="one_to_one")
    bad = merged.loc[merged["problem"] != "", ["path", "problem"]]
    good = merged[merged["problem"] == ""].drop(columns="problem").reset_index(drop=True)
    dups = duplicates(good)
    report = Path(results_dir) / name if results_dir is not None else None
    say = (lambda line: None) if quiet else tell_once
    bad_files(name, root, bad, len(items), on_bad_image, report, say)
    _check_classes(root, good, class_dirs)  # before dropping leaks, so an error blames the right thing
    good, test, dups, test_dups = testset.split_off(good, dups)
    if "is_valid" in good.columns:
        good, dups = _drop_split_leaks(good, dups)
    elif len(dups):
        dups["action"] = "kept in the same fold as its first copy"
    dups = pd.concat([dups, test_dups], ignore_index=True) if len(test_dups) else dups
    if len(dups):
        say(f"bench: dataset {name}: {len(dups)} exact duplicate file(s), kept on one side of the split "
            f"({report / 'duplicates.csv' if report is not None else 'no report written'})")
    _check_split(name, root, good)
    testset.check(name, test, good, asked=bool(test_set))
    pending = None if report is None else (
        report, pd.concat([bad, ignored], ignore_index=True), dups,
        {"dataset": name, "source": kind, "root": str(Path(root).resolve()), "fingerprint": fp, "n_files": len(items),
         "n_good": len(good), "n_test": len(test), "n_bad": len(bad), "n_ignored": len(ignored),
         "n_duplicates": len(dups)})
    return Dataset(name, Path(root), good, fp, kind, bad.reset_index(drop=True), dups, test,
                   testset.roles(Path(root), test, kind), pending)


FIRST = 3  # files named in an error or a note; the report lists them all


def bad_files(name: str, root, bad: pd.DataFrame, n_items: int, policy: str, report: Path | None, say) -> None:
    """The bad-file policy. Files a table names that do not exist are refused unless `skip` (a wrong path or
    folder usually means the whole table is off, and training on what is left would hide it); unreadable files are
    skipped unless `fail`. Either way the first few are named."""
    if bad.empty:
        return
    missing = bad[bad["problem"].str.startswith("missing")]
    refused = bad if policy == "fail" else missing if policy == "auto" else bad.iloc[:0]
    if len(refused):
        first, others = refused.iloc[0], list(refused["path"].iloc[1:FIRST])
        also = f"; also {', '.join(others)}" + (f" and {len(refused) - FIRST} more" if len(refused) > FIRST else "")
        what = "listed file(s) that do not exist" if refused is missing else "bad image file(s)"
        raise ConfigError(f"dataset: {len(refused)} {what} in {root}: {first['path']}: {first['problem']}"
                          f"{also if others else ''}; fix or remove them, or pass --on-bad-image skip (make: "
                          f"ON_BAD_IMAGE=skip) to train without them")
    where = f"all in {report / 'bad_images.csv'}" if report is not None else "no report written"
    names = ", ".join(bad["path"].head(FIRST)) + (", ..." if len(bad) > FIRST else "")
    say(f"bench: dataset {name}: skipped {len(bad)} bad image file(s) of {n_items}: {names} ({where})")


def _drop_split_leaks(good: pd.DataFrame, dups: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """With the user's own split, a validation image identical to a training image is dropped from validation."""
    train_shas = set(good.loc[~good["is_valid"], "sha"])
    leak = good["is_valid"] & good["sha"].isin(train_shas)
    if len(dups):
        leaked = set(good.loc[leak, "path"])
        dups["action"] = ["dropped from validation (same file in training)" if p in leaked
                          else "kept (same side of the split)" for p in dups["path"]]
    return good[~leak].reset_index(drop=True), dups


def _check_classes(root: Path, good: pd.DataFrame, class_dirs: list[str]) -> None:
    if good.empty:
        raise ConfigError(f"dataset: no readable images in {root} (all files are bad; `bench check` lists them)")
    paths = good["path"]
    for c in class_dirs:
        if not paths.str.startswith(c + "/").any():
            raise ConfigError(f"dataset: class folder {Path(root) / c} has no readable images; add images or "
                              f"remove the folder")


def _check_split(name: str, root: Path, good: pd.DataFrame) -> None:
    classes = good["label"].unique()
    if len(classes) < 2:
        raise ConfigError(f"dataset: {name} has only one class ({classes[0]!r}) in {root}; a classifier needs at "
                          f"least two (expected {root}/<class>/<image>)")
    if "is_valid" in good.columns:
        train = set(good.loc[~good["is_valid"], "label"])
        missing = sorted(set(classes) - train)
        if missing:
            raise ConfigError(f"dataset: class {missing[0]!r} has no training images in {name}'s own split "
                              f"({len(missing)} such class(es)); move some of its images to training")
        if not good["is_valid"].any():
            raise ConfigError(f"dataset: {name}'s own split has no validation images (after dropping copies of "
                              f"training images); mark some is_valid=true or add a valid/ folder")
