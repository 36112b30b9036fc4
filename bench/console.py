"""What a person reads: one line per epoch (a vanishing batch bar on a terminal), warnings as one line each.

Log files get lines, never redraws: fastprogress and tqdm redraw their bars into files too. A sweep worker prints
nothing (BENCH_CONSOLE=off): the sweep prints one line per finished run and the run's row holds the details.
"""
from __future__ import annotations

import os
import sys
import time
import warnings

from .config import ConfigError

PHASES = {1: "frozen", 2: "unfrozen"}


def console_mode(stream=None) -> str:
    """How training shows progress: `bar` on a terminal (a batch bar that vanishes, then one line per epoch),
    `lines` when the stream is a file or pipe (one line per epoch, nothing redrawn), `off` when BENCH_CONSOLE=off
    (sweep workers: no epoch or warning lines, the sweep prints one line per finished run). BENCH_CONSOLE=lines|bar
    forces the others."""
    forced = os.environ.get("BENCH_CONSOLE", "").strip().lower()
    if forced in ("off", "lines", "bar"):
        return forced
    stream = stream or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


def epoch_line(row: dict, k: int | None = None, total: int | None = None) -> str:
    """One epoch as one line, e.g. `bench: epoch 3/4 (phase 2 unfrozen 1/2): train loss 0.4120, valid loss 0.3311,
    accuracy 0.9010, top-5 0.9921, 12.3 s (train 10.1 s)`."""
    def num(v):
        return "n/a" if v is None else f"{float(v):.4f}"
    of = f"/{total}" if total else ""
    topk = f"top-{k}" if k else "top-k"
    return (f"bench: epoch {row['epoch']}{of} (phase {row['phase']} {PHASES.get(row['phase'], '')} "
            f"{row['phase_epoch']}/{row.get('phase_epochs', '?')}): train loss {num(row['train_loss'])}, "
            f"valid loss {num(row['valid_loss'])}, accuracy {num(row['accuracy'])}, {topk} "
            f"{num(row['top_k_accuracy'])}, {row['seconds']:.1f} s (train {row['train_seconds']:.1f} s)")


def quiet_libraries() -> None:
    """fastai/geffnet/timm import-time deprecation chatter hides the lines users need to read; the warnings left
    are shown as one `bench: warning: ...` line each (no file:line, no source echo), fit for logs."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*torch.jit.*")
    warnings.formatwarning = format_warning
    warnings.showwarning = show_warning


def format_warning(message, category=None, filename=None, lineno=None, line=None) -> str:
    return f"bench: warning: {' '.join(str(message).split())}\n"


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if console_mode() == "off":  # a sweep worker: what matters (weights used, errors) is in the run's row
        return
    try:
        (file or sys.stderr).write(format_warning(message))
    except (OSError, ValueError):  # a closed stream, as warnings.showwarning tolerates too
        pass


def one_line(e: BaseException) -> str:
    """An exception as one line, `Type: first line of its message` (300 characters at most): the `error` column of
    a failed row and what a person reads of it."""
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0][:300]}" if msg else type(e).__name__


def recorded_or_exit(what: str, where, fn):
    """`fn()`'s result and exit code 0; a failure `fn` has already recorded as a `failed` row becomes one line on
    stderr, `bench: <what> failed: <error> (recorded in <where>)`, and exit code 1. Bad input (ConfigError) is not
    a failure of the run: it propagates, for the CLI's exit code 2. Shared by `bench run` and `bench speed`."""
    try:
        return fn(), 0
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 (any failure: the row holds it, the user gets one line)
        print(f"bench: {what} failed: {one_line(e)} (recorded in {where})", file=sys.stderr)
        return None, 1


def progress(iterable, total: int, desc: str, every: float = 5.0):
    """`iterable` passed through, showing how far it is, as training shows epochs (`console_mode`): a tqdm bar that
    vanishes on a terminal, a line every `every` seconds when stderr is a file or pipe (a log gets lines, never
    redraws; short work prints none), nothing when BENCH_CONSOLE=off."""
    mode = console_mode()
    if mode == "bar":
        from tqdm.auto import tqdm  # deferred: only a terminal draws a bar
        yield from tqdm(iterable, total=total, desc=desc, unit="img", file=sys.stderr, leave=False)
        return
    last = start = time.monotonic()
    done = 0
    for done, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if mode == "lines" and now - last >= every:
            last = now
            print(f"{desc}: {done:,} of {total:,} ({done / max(total, 1):.0%}, {now - start:.0f} s)", file=sys.stderr)
    if mode == "lines" and last > start:  # a line was printed: say that it finished
        print(f"{desc}: {done:,} of {total:,} done in {time.monotonic() - start:.0f} s", file=sys.stderr)
