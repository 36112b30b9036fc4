"""One table per model library (bench.train.libraries): every list that names libraries is derived from it, and the
index columns are derived from RunConfig's fields."""
from __future__ import annotations

from dataclasses import fields

from bench.config import RunConfig
from bench.train.archs import REGISTRY
from bench.train.libraries import LIBRARIES, VERSION_FIELDS, versions

# one call of each library's builder (the factory in archs.py): a new library's entry needs one here too
EXAMPLES = {"torchvision": ("resnet18",), "fastai": (18,), "timm": ("resnet18",),
            "pytorchcv": ("seresnet10", "seresnet"), "geffnet": ("tf_efficientnet_b0", 0.2)}


def test_each_library_builds_its_own_specs():
    assert set(EXAMPLES) == set(LIBRARIES)
    for name, lib in LIBRARIES.items():
        assert lib.builder(*EXAMPLES[name]).source == name
    assert {spec.source for spec in REGISTRY.values()} <= set(LIBRARIES)


def test_lists_naming_libraries_come_from_the_table():
    from bench.sweep.forkserver import PRELOAD
    from bench.train.realise import LIBRARY
    from bench.train.record import INDEX_FIELDS
    from bench.train.speed import SPEED_FIELDS
    from bench.train.weights import CACHES
    assert CACHES == {n: (lib.cache, lib.host) for n, lib in LIBRARIES.items()}
    assert LIBRARY == {n: lib.package for n, lib in LIBRARIES.items()}
    assert {lib.preload for lib in LIBRARIES.values()} <= set(PRELOAD)
    for columns in (INDEX_FIELDS, SPEED_FIELDS):
        assert set(VERSION_FIELDS) <= set(columns)
        assert {lib.package for lib in LIBRARIES.values()} <= set(columns)
    assert list(versions()) == VERSION_FIELDS
    # the columns the rows had before the table (their order too)
    assert VERSION_FIELDS == ["python", "torch", "torchvision", "fastai", "timm", "pytorchcv", "geffnet"]


def test_index_columns_follow_runconfig():
    """A new RunConfig field is a column of runs.csv (and in every row's base) unless it is listed as not recorded."""
    from bench.config import make_config
    from bench.train.record import INDEX_FIELDS, NOT_RECORDED, SETTINGS, base_row
    names = [f.name for f in fields(RunConfig)]
    assert set(NOT_RECORDED) <= set(names)
    assert [n for n in names if n not in INDEX_FIELDS] == [n for n in names if n in NOT_RECORDED]
    row = base_row(make_config(arch="resnet18"), "a1")
    assert set(SETTINGS) <= set(row) and not set(NOT_RECORDED) & set(row)
    assert len(INDEX_FIELDS) == len(set(INDEX_FIELDS))


def test_cli_choices_come_from_their_tables():
    """`bench sweep --executor` offers what executors.EXECUTORS holds: a new executor needs no second list."""
    from bench.cli import build_parser
    from bench.config import CHOICES
    from bench.sweep.executors import EXECUTORS
    sweep = build_parser("sweep")._subparsers._group_actions[0].choices["sweep"]
    options = {a.dest: a.choices for a in sweep._actions}
    assert list(options["executor"]) == list(EXECUTORS) and list(options["track"]) == list(CHOICES["track"])
