"""Old home of the results-file helpers, now in bench.files (locks, appends, atomic writes); the epoch callback is
bench.train.epochlog, provenance bench.provenance, console output bench.console.

Kept only for the modules the lead is rewriting (issues 23/24: train/prepare.py, sweep/race.py, sweep/racelog.py),
which import these names from here: switch them to bench.files and delete this file.
"""
from .files import atomic_write, check_writable, encode_rows, read_rows  # noqa: F401
