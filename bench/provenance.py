"""Where a row was computed: the Python and library versions, the code's git commit, the host. Recorded beside every
run's and every speed measurement's numbers; the library versions also go into a run's identity
(bench.train.realise)."""
from __future__ import annotations

import platform
import socket
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version as _installed
from pathlib import Path


@lru_cache(maxsize=None)
def version(package: str) -> str:
    """The installed version of `package`, '' when it is not installed."""
    try:
        return _installed(package)
    except PackageNotFoundError:
        return ""


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    """{"python": ..., package: version or ''} for `packages` (bench.train.libraries.versions: a row's version
    columns)."""
    return {"python": platform.python_version(), **{p: version(p) for p in packages}}


def git_sha() -> str:
    """The short commit of bench's source, `+dirty` when tracked files differ from it; '' outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if sha and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def host() -> str:
    return socket.gethostname()
