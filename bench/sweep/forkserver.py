"""The pool's server process: `python -m bench.sweep.forkserver`, started by `bench.sweep.pool.Pool`.

It imports torch, fastai and the architecture libraries once, then forks one child per job: each run starts from
the same freshly imported state (seeds, torch settings and thread count, deterministic flags, caches, warnings
filters, fastai defaults, environment), so its numbers cannot depend on the runs before it, and a crash, segfault
or out-of-memory kill ends that child alone. The server itself never trains: it holds no thread pool and no CUDA
context, which is what makes forking it safe (as PyTorch's own DataLoader workers are forked).

Protocol, one JSON object a line: the parent writes `{"key", "job", "env", "cwd"}` on stdin; the server answers
`{"ready": true, "gpus"}` once imported, then `{"key", "pid"}` when a child starts and `{"key", "code", "cpu_s"}` when it ends
(the exit status, a negative number being the signal that ended it, and the CPU seconds it used: on a shared
machine the CPU time of a 1-thread run is what its wall time would be on an idle core). At end of input (the parent is gone, even by kill -9)
the server exits and leaves running children to finish: each holds its run's claim and records its own row.
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys

from ..console import quiet_libraries
from ..train.libraries import LIBRARIES
from .worker import EXIT_FAILED, run_job, show_traceback

# What a run imports, so that children find it imported: bench's training modules, then each model library's own
# (bench.train.libraries). Optional libraries may be missing: then a run that needs one fails with its own
# ImportError, as it did before the pool.
PRELOAD = ("bench.sweep.worker", "bench.train.protocol", "bench.train.learner", "bench.train.archs",
           "bench.train.prepare", "bench.train.track", "bench.data.loaders",
           *(lib.preload for lib in LIBRARIES.values()))


def preload() -> None:
    quiet_libraries()
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass


def gpu_count() -> int:
    """CUDA devices, counted through NVML (torch's device_count): no CUDA context here, which forked children could
    not use."""
    import torch  # deferred: imported by preload, after quiet_libraries() has silenced import-time warnings
    return torch.cuda.device_count()


def child(msg: dict, keep: set[int]) -> int:
    """In the forked child: become the run's process and run the job (`bench.sweep.worker.run_job`)."""
    for fd in keep:  # the server's pipes and its other children's pidfds are not the run's business
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: the run records itself as interrupted
    os.environ.update(msg.get("env") or {})
    if msg.get("cwd") and os.path.isdir(msg["cwd"]):
        os.chdir(msg["cwd"])
    try:
        return run_job(msg["job"])
    except BaseException:  # noqa: BLE001  the parent turns an exit without a row into a failed row
        show_traceback()
        return EXIT_FAILED


def serve(inp: int, out) -> None:
    children: dict[int, tuple[str, int]] = {}  # pidfd -> (key, pid)
    buf = b""

    def say(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say({"ready": True, "pid": os.getpid(), "gpus": gpu_count()})
    while True:
        readable, _, _ = select.select([inp, *children], [], [])
        for fd in readable:
            if fd != inp:
                key, pid = children.pop(fd)
                os.close(fd)
                _, status, usage = os.wait4(pid, 0)
                say({"key": key, "code": os.waitstatus_to_exitcode(status),
                     "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)})
                continue
            data = os.read(inp, 1 << 16)
            if not data:  # the parent is gone: the children finish on their own
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    code = child(msg, {inp, out.fileno(), *children})
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
                children[os.pidfd_open(pid)] = (msg["key"], pid)
                say({"key": msg["key"], "pid": pid})


def main() -> None:
    # Ctrl-C reaches the whole process group: the runs record themselves as interrupted, the parent reports them;
    # the server stays up until its input ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "w")  # the protocol channel; anything printed, here or in a run, goes to stderr
    os.dup2(2, 1)
    preload()
    serve(sys.stdin.fileno(), out)


if __name__ == "__main__":
    main()
