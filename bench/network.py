"""Is the network there? One quick probe instead of a library's retry loop (timm alone retries for 47 s offline)."""
from __future__ import annotations

import os
import socket
from functools import lru_cache


@lru_cache(maxsize=None)
def online(host: str, timeout: float = 3.0) -> bool:
    """Can we reach `host`? BENCH_OFFLINE=1 forces no."""
    if os.environ.get("BENCH_OFFLINE", "") not in ("", "0"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hf_offline(flag: bool) -> None:
    """Switch huggingface_hub's offline mode in this process (its constant is read once at import)."""
    try:
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = flag
    except Exception:
        pass
