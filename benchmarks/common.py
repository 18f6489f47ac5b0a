"""Shared helpers of the benchmarks: machine description, thread control, quiet-machine wait,
CPU-contention monitor, timed subprocesses with peak RSS, and JSON output.

The benchmark machines are shared and noisy, so every script (a) fixes its thread count,
(b) measures the configurations it compares interleaved in one run, (c) waits for a quiet
machine before measuring and (d) records how much CPU *other* processes used meanwhile
(``others_cpu_share``: 0 = machine to ourselves, 1 = every core busy with someone else).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = str(ROOT / "fairseq_layerdrop")
# bench_prune.py times the installed console script itself (its start-up is part of the cost);
# every other tool is started through fairseq_layerdrop.evaluation.tool_command
VENV_BIN = Path(sys.executable).parent
RESULTS_DIR = ROOT / "benchmarks" / "results"


def set_threads(n: int) -> None:
    """Pin torch (intra-op) and the OpenMP/MKL pools of child processes to ``n`` threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)


def loadavg() -> List[float]:
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def wait_for_quiet(max_wait: float, threshold: float = 0.5, poll: float = 10.0) -> Dict:
    """Sleep-poll until the 1-minute load average is below ``threshold`` (at most ``max_wait`` s)."""
    start = time.time()
    load = loadavg()
    while load[0] >= threshold and time.time() - start < max_wait:
        time.sleep(min(poll, max(0.0, max_wait - (time.time() - start))))
        load = loadavg()
    return {"loadavg_at_start": load, "waited_s": round(time.time() - start, 1),
            "quiet": load[0] < threshold, "threshold": threshold}


def _cpu_info() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(threads: int) -> Dict:
    """Cores, memory, CPU model, software versions and thread settings, as a JSON-able dict."""
    import torch

    try:
        import fairseq
        fairseq_version = fairseq.__version__
    except Exception:  # noqa: BLE001  (report, never fail, on a broken fairseq)
        fairseq_version = "unavailable"
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": _cpu_info(), "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
        "mem_gb": round(mem_gb, 1) if mem_gb else None, "python": platform.python_version(),
        "torch": torch.__version__, "fairseq": fairseq_version, "torch_threads": torch.get_num_threads(),
        "threads_requested": threads, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "git_commit": commit, "loadavg": loadavg(),
    }


class CpuMonitor:
    """CPU time used by *other* processes while a block runs, as a share of all cores.

    Busy time of the whole machine comes from ``/proc/stat``; ours is this process plus its
    waited-for children (``getrusage``). ``share`` ~0 means nobody else was computing.
    """

    def __enter__(self):
        self._t0, self._busy0, self._own0 = time.time(), self._machine_busy(), self._own()
        return self

    def __exit__(self, *exc):
        wall = time.time() - self._t0
        others = (self._machine_busy() - self._busy0) - (self._own() - self._own0)
        self.share = max(0.0, others) / max(wall * (os.cpu_count() or 1), 1e-9)
        self.loadavg_end = loadavg()
        return False

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_timed(cmd: Sequence[str], env_extra: Optional[Dict] = None, timeout: float = 1800) -> Dict:
    """Run ``cmd``; return wall seconds, return code, stdout and stderr."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env_extra or {}))
    t0 = time.perf_counter()
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env, timeout=timeout)
    return {"wall_s": time.perf_counter() - t0, "returncode": proc.returncode,
            "stdout": proc.stdout, "stderr": proc.stderr}


def starts(cmd: Sequence[str]) -> bool:
    """Whether ``cmd --help`` runs and exits 0 (a missing program or a hang counts as no)."""
    try:
        return bool(cmd) and run_timed([*cmd, "--help"], timeout=120)["returncode"] == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_timed_rss(cmd: Sequence[str], env_extra: Optional[Dict] = None) -> Dict:
    """Run ``cmd`` under GNU ``/usr/bin/time``; wall seconds and the command's own peak RSS (bytes).

    Not ``wait4`` on our own child: Linux carries a process's RSS high-water mark across fork and
    exec, so a child forked from this (large) Python process would report our RSS, not its own.
    ``time`` is a small process; its child's high-water mark starts near zero.
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env_extra or {}))
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", stats.name, *map(str, cmd)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - t0
        lines = [ln for ln in open(stats.name).read().splitlines() if ln.strip().isdigit()]
    return {"wall_s": wall, "maxrss_bytes": int(lines[-1]) * 1024 if lines else None,
            "returncode": proc.returncode, "stderr": proc.stderr}


def make_text_data(root: Path, vocab: int, sentences: int, src_len: int, tgt_len: int = 0,
                   seed: int = 1) -> Path:
    """Binarized synthetic test split via ``fairseq-preprocess``; returns the data directory.

    The dictionary (``vocab`` entries with fairseq's 4 special symbols) is written by hand so that
    the vocabulary size is exact. ``tgt_len > 0``: translation pair ``src -> tgt``; else
    monolingual (language modeling). Sentences are random words (the models are random too).
    """
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dict.txt").write_text("".join(f"w{i} 1\n" for i in range(vocab - 4)))
    gen = torch.Generator().manual_seed(seed)

    def write(name, length):
        ids = torch.randint(0, vocab - 4, (sentences, length), generator=gen).tolist()
        (root / name).write_text("".join(" ".join(f"w{i}" for i in row) + "\n" for row in ids))

    if tgt_len:
        write("test.src", src_len)
        write("test.tgt", tgt_len)
        args = ["--source-lang", "src", "--target-lang", "tgt", "--srcdict", root / "dict.txt",
                "--tgtdict", root / "dict.txt"]
    else:
        write("test.txt", src_len)
        args = ["--only-source", "--srcdict", root / "dict.txt"]
    from fairseq_layerdrop.evaluation import tool_command

    out = run_timed([*tool_command("fairseq-preprocess"), *args, "--testpref",
                     root / ("test" if tgt_len else "test.txt"), "--destdir", root / "bin", "--workers", "1"])
    if out["returncode"] != 0:
        raise RuntimeError("fairseq-preprocess failed:\n" + out["stderr"][-2000:])
    return root / "bin"


def save_random_checkpoint(argv: Sequence[str], path: Path, sample: Optional[Dict] = None) -> Dict:
    """Build a model from fairseq training arguments and save it as ``fairseq-train`` would.

    Weights are fairseq's random initialisation. With ``sample``, one update is taken first so
    the checkpoint also holds Adam's state (``last_optimizer_state``), as ``checkpoint_last.pt``
    does. Saving goes through fairseq's own ``Trainer.save_checkpoint``. Returns sizes.
    """
    import gc

    from fairseq import options, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    import fairseq_layerdrop

    fairseq_layerdrop.register()

    args = options.parse_args_and_arch(options.get_training_parser(), list(map(str, argv)))
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    utils.set_torch_seed(cfg.common.seed)
    model = task.build_model(cfg.model)
    n_params = sum(p.numel() for p in model.parameters())
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    if sample is not None:
        trainer.train_step([sample])
    trainer.consolidate_optimizer()  # as fairseq's checkpoint_utils.save_checkpoint does first
    trainer.save_checkpoint(str(path), {})
    del trainer, model, task
    gc.collect()
    return {"params": n_params, "file_bytes": Path(path).stat().st_size}


def result_head(name: str, opts, argv: Optional[Sequence[str]], **extra) -> Dict:
    """The start of ``benchmarks/bench_<name>.py``'s result: its name, the command that made it,
    its settings (every option but ``out``), then ``extra``."""
    return {"benchmark": name, "command": f"python benchmarks/bench_{name}.py " + " ".join(argv or sys.argv[1:]),
            "settings": {k: v for k, v in vars(opts).items() if k != "out"}, **extra}


def start_training_result(name: str, opts, argv: Optional[Sequence[str]], **extra) -> Dict:
    """A training benchmark's start: ``opts.threads`` threads, the plugin registered with fairseq,
    the result's head (:func:`result_head`), then a quiet machine awaited (``load``, up to
    ``opts.max_wait`` seconds) and the machine described (``machine``)."""
    set_threads(opts.threads)
    import fairseq_layerdrop

    fairseq_layerdrop.register()
    result = result_head(name, opts, argv, **extra)
    result["load"] = wait_for_quiet(opts.max_wait)
    result["machine"] = machine_info(opts.threads)
    return result


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def add_round_robin_options(ap, warmup: int, rounds: int, block: int) -> None:
    """The options of the training benchmarks that time variants round robin (and ``--out``)."""
    from fairseq_layerdrop.cli import boundary

    ap.add_argument("--warmup", type=boundary.whole_number, default=warmup, help="untimed updates per variant")
    ap.add_argument("--rounds", type=boundary.positive_int, default=rounds, help="round-robin rounds over the variants")
    ap.add_argument("--block", type=boundary.positive_int, default=block, help="timed updates per variant per round")
    ap.add_argument("--seed", type=boundary.whole_number, default=1)
    ap.add_argument("--max-wait", type=boundary.nonnegative_float, default=300, help="seconds to wait for a quiet machine")
    ap.add_argument("--out", default=None, help="also write the JSON here", type=out_path)


def quick_round_robin(opts) -> None:
    """``--quick``: one warm-up, three rounds of two updates, no waiting for a quiet machine."""
    if opts.quick:
        opts.warmup, opts.rounds, opts.block, opts.max_wait = 1, 3, 2, 0


def out_path(text: str) -> str:
    """argparse type of ``--out``: refused at once if it names a directory or lies under a file, so a
    long measurement never ends in a write that cannot succeed."""
    path = Path(text)
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if path.is_dir() or blocked is not None:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: " + ("it is a directory" if path.is_dir()
                                                                     else f"{blocked} is not a directory"))
    return text


def write_result(result: Dict, name: str, out: Optional[str]) -> None:
    """Print ``result`` as JSON on stdout and, if ``out`` is given, write it there too (beside, then
    renamed: never half-written)."""
    text = json.dumps(result, indent=1, sort_keys=False)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(out).with_name(f".{Path(out).name}.tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, out)


def log(msg: str) -> None:
    """Progress on stderr (stdout is reserved for the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
