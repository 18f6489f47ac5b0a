"""Run the real ``fairseq-train`` in this process and record what LayerDrop did (tests only).

One process per data-parallel rank (fairseq's own launcher spawns one process per *GPU*, i.e.
none on a CPU machine, so :func:`launch` starts them with ``--distributed-no-spawn``)::

    python tests/ddp_driver.py [--per-rank-masks] OUT_PREFIX <fairseq-train arguments>

writes ``OUT_PREFIX.rank{R}.json`` and ``OUT_PREFIX.rank{R}.pt`` (final model state) on every
rank R (fairseq itself only saves on rank 0). The JSON holds:

- ``draws``: every LayerDrop training draw with the trainer's coordinates (``update`` as passed
  to ``task.train_step``, ``micro``: index of the micro-batch in the update, counted here), the
  list's own (``list_update``, ``list_micro``), the stack and the keep-mask;
- ``losses``: full-precision loss of every micro-batch (fairseq logs 3 decimals);
- ``param_digests``: SHA-1 of all parameters after every update;
- ``none_grads``: parameter tensors without a gradient when the optimizer stepped;
- ``wrapper``: the data-parallel class fairseq wrapped the model in.

Recording wraps methods in this process only; the plugin is not edited. One shim, active only
for ``--ddp-backend c10d`` / ``pytorch_ddp``: fairseq passes ``device_ids=[device_id]`` to torch's
DistributedDataParallel, which torch refuses for a CPU module (for CPU it must be ``None``).
We drop those two arguments and keep all others fairseq passes (``find_unused_parameters``,
``bucket_cap_mb``, ...). On a GPU fairseq's call is right as it is.
``--per-rank-masks`` (an experiment, never a real setting) offsets each rank's mask seed.
"""
import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch

DRIVER = str(Path(__file__).resolve())


# -- inside the rank process ---------------------------------------------------------------
def _cpu_ddp_class():
    from torch.nn.parallel import DistributedDataParallel

    class CPUDistributedDataParallel(DistributedDataParallel):
        def __init__(self, module, device_ids=None, output_device=None, **kwargs):
            if next(module.parameters()).device.type == "cpu":
                device_ids = output_device = None
            super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)

    return CPUDistributedDataParallel


def _digest(model) -> str:
    h = hashlib.sha1()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _record_draws(record, state, per_rank_masks):
    from fairseq_layerdrop.layerdrop import LayerDropList

    orig_draw = LayerDropList.draw

    def draw(self):
        if per_rank_masks and not getattr(self, "_rank_offset", False):
            self._rank_offset = True
            rank_seed = self.settings.seed + 1000 * torch.distributed.get_rank()
            self.settings = dataclasses.replace(self.settings, seed=rank_seed)
        list_update, list_micro = self.num_updates, self.micro_batch
        keep = orig_draw(self)
        record["draws"].append(dict(update=state["update"], micro=state["micro"], stack=self.settings.stack,
                                    list_update=list_update, list_micro=list_micro,
                                    keep=keep.int().tolist()))
        return keep

    LayerDropList.draw = draw


def _record_trainer(record, state):
    from fairseq import trainer as trainer_mod

    Trainer = trainer_mod.Trainer
    orig_init, orig_clip, orig_step = Trainer.__init__, Trainer.clip_grad_norm, Trainer.train_step

    def init(self, *args, **kwargs):
        orig_init(self, *args, **kwargs)
        state["trainer"] = self
        task_train_step = self.task.train_step

        def task_step(sample, model, criterion, optimizer, update_num, ignore_grad=False, **kw):
            state["micro"] = state["micro"] + 1 if state["update"] == update_num else 0
            state["update"] = update_num
            loss, sample_size, log = task_train_step(sample, model, criterion, optimizer, update_num,
                                                     ignore_grad=ignore_grad, **kw)
            record["losses"].append(dict(update=update_num, micro=state["micro"], loss=float(loss),
                                         dummy=bool(ignore_grad)))
            return loss, sample_size, log

        self.task.train_step = task_step  # instance attribute: only this trainer's task

    def clip_grad_norm(self, clip_norm):
        # once per update, after the gradients were all-reduced, before the optimizer step
        params = [p for p in self.get_model().parameters() if p.requires_grad]
        record["none_grads"][str(self.get_num_updates() + 1)] = sum(p.grad is None for p in params)
        return orig_clip(self, clip_norm)

    def train_step(self, samples, raise_oom=False):
        out = orig_step(self, samples, raise_oom=raise_oom)
        record["param_digests"][str(self.get_num_updates())] = _digest(self.get_model())
        return out

    Trainer.__init__, Trainer.clip_grad_norm, Trainer.train_step = init, clip_grad_norm, train_step


def _write(out_prefix, record, trainer) -> None:
    record["rank"] = rank = trainer.data_parallel_rank
    record["world_size"] = trainer.data_parallel_world_size
    record["num_updates"] = trainer.get_num_updates()
    record["wrapper"] = type(getattr(trainer.model, "module", trainer.model)).__name__
    torch.save(trainer.get_model().state_dict(), f"{out_prefix}.rank{rank}.pt")
    with open(f"{out_prefix}.rank{rank}.json", "w") as f:
        json.dump(record, f)


def main(argv) -> None:
    per_rank_masks = argv[0] == "--per-rank-masks"
    if per_rank_masks:
        argv = argv[1:]
    out_prefix, train_args = argv[0], argv[1:]
    from fairseq.models import distributed_fairseq_model

    distributed_fairseq_model.DistributedDataParallel = _cpu_ddp_class()
    record = {"draws": [], "losses": [], "param_digests": {}, "none_grads": {}}
    state = {"trainer": None, "update": None, "micro": -1}
    _record_draws(record, state, per_rank_masks)
    _record_trainer(record, state)
    from fairseq_cli import train

    sys.argv = ["fairseq-train", *train_args]
    try:
        train.cli_main()
    finally:  # a failed run still reports what it did before the failure
        if state["trainer"] is not None:
            _write(out_prefix, record, state["trainer"])


# -- in the test process -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out_prefix, train_args, world_size=1, per_rank_masks=False, timeout=60):
    """Run the driver on ``world_size`` ranks (gloo, CPU); return ``[(returncode, log)]`` per rank.

    A rank still running after ``timeout`` seconds (e.g. a hung collective) is killed with its
    process group and reported with return code ``None``.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    dist_args = []
    if world_size > 1:
        dist_args = ["--distributed-no-spawn", "--distributed-world-size", str(world_size),
                     "--distributed-backend", "gloo",
                     "--distributed-init-method", f"tcp://127.0.0.1:{free_port()}"]
    flag = ["--per-rank-masks"] if per_rank_masks else []
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for rank in range(world_size):
        log = open(f"{out_prefix}.rank{rank}.log", "w+")
        rank_args = dist_args + (["--distributed-rank", str(rank)] if world_size > 1 else [])
        procs.append(subprocess.Popen([sys.executable, DRIVER, *flag, str(out_prefix), *map(str, train_args),
                                       *rank_args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True))
        logs.append(log)
    results = []
    for proc, log in zip(procs, logs):
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's session only
            proc.wait()
            code = None
        log.seek(0)
        results.append((code, log.read()))
        log.close()
    return results


def load(out_prefix, rank=0):
    """The record and the final ``state_dict`` a rank wrote."""
    with open(f"{out_prefix}.rank{rank}.json") as f:
        record = json.load(f)
    return record, torch.load(f"{out_prefix}.rank{rank}.pt", map_location="cpu")


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def expected_keep(draw, p, num_layers, seed, warmup_updates=0, schedule="uniform"):
    """The keep-mask LayerDrop's pure function gives for a recorded draw's trainer coordinates."""
    from fairseq_layerdrop.layerdrop import draw_keep_mask, layer_rates, mask_seed, stack_id, warmup_factor

    rates = torch.tensor(layer_rates(p, num_layers, schedule), dtype=torch.float64)
    rates = rates * warmup_factor(draw["update"], warmup_updates)
    mseed = mask_seed(seed, draw["update"], draw["micro"], stack_id(draw["stack"]))
    return draw_keep_mask(rates, mseed, num_branches=len(draw["keep"][0])).int().tolist()


if __name__ == "__main__":
    main(sys.argv[1:])
