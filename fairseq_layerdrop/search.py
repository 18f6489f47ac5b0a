"""``--strategy search-on-valid``: greedy layer removal guided by validation loss (needs fairseq).

Starting from the full model, each step tries removing every remaining layer of every stack
that is still above its target depth, and removes the one whose absence gives the lowest
validation loss; ties go to the earlier stack, then the lower index. The task and model are
built once; a candidate is evaluated by swapping the stack's ``layers`` for a ``ModuleList``
of the kept layers (the same modules, no reload), which is exactly the network a pruned
checkpoint builds. The loss is the token-level negative log-likelihood in bits (base 2, as
fairseq logs ``nll_loss``) over the first ``max_batches`` batches of the subset, in order.
"""
import contextlib
import itertools
import math
import resource
import sys
from collections import OrderedDict
from typing import Dict, List

import torch
from fairseq import tasks, utils
from omegaconf import OmegaConf, open_dict
from tqdm import tqdm

import fairseq_layerdrop
from fairseq_layerdrop.errors import show
from fairseq_layerdrop.pruning import _LAYER, prune_state
from fairseq_layerdrop.subnetwork import only_layers

fairseq_layerdrop.register()  # plugin architectures without a stock name are built here


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _same_shapes(built: dict, weights: dict) -> None:
    """Shared names must have the same shapes, and the built model may not be much larger than the
    weights (fairseq adds a few small buffers, and its load_state_dict checks names strictly)."""
    for key in sorted(set(built) & set(weights)):
        if tuple(built[key].shape) != tuple(weights[key].shape):
            raise ValueError(f"{show(key)} is {list(built[key].shape)} in the model the config and the data's "
                             f"dictionary describe, {list(weights[key].shape)} in the checkpoint")
    if _nbytes(built.values()) > 2 * _nbytes(weights.values()) + (64 << 20):
        raise ValueError(f"the model its config describes takes {_nbytes(built.values()):,} bytes, its weights "
                         f"{_nbytes(weights.values()):,}")


@contextlib.contextmanager
def _address_space(extra: int):
    """Allocations beyond ``extra`` more bytes of address space fail (MemoryError) inside."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * resource.getpagesize()
    limit = now + extra if hard == resource.RLIM_INFINITY else min(hard, now + extra)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _meta_model(task, model_cfg):
    try:
        with torch.device("meta"):
            return task.build_model(model_cfg, from_checkpoint=True)
    except (NotImplementedError, RuntimeError):
        return None


def build_checked(task, model_cfg, weights: dict):
    """The model ``model_cfg`` describes, refused before it takes memory if its tensors are not the
    checkpoint's: a hostile config could otherwise ask for a model of any size. Built first on
    torch's meta device (no memory); families whose initialisation cannot run there (BART copies
    through the CPU) are built under an address-space limit of twice the checkpoint's tensors
    plus 512 MiB, then compared."""
    shell = _meta_model(task, model_cfg)
    if shell is not None:
        _same_shapes(shell.state_dict(), weights)
        return task.build_model(model_cfg, from_checkpoint=True)
    try:
        with _address_space(2 * _nbytes(weights.values()) + (512 << 20)):
            model = task.build_model(model_cfg, from_checkpoint=True)
    except (MemoryError, RuntimeError) as err:
        raise ValueError(f"building the model its config describes needs more memory than its weights "
                         f"justify ({show(type(err).__name__)})") from None
    _same_shapes(model.state_dict(), weights)
    return model


class ValidLoss:
    """A model, its task and a fixed list of validation batches; ``loss(keep)`` in bits per token."""

    def __init__(self, state: dict, data: str, subset: str = "valid", max_batches: int = 20,
                 max_tokens: int = 4096):
        # the stock network and config a pruned file will carry (LayerDrop plays no part in eval)
        state = prune_state(state, {}, to_stock=True)
        cfg = OmegaConf.create(state["cfg"], flags={"allow_objects": True})  # BART keeps a Namespace
        with open_dict(cfg):
            cfg.task.data = str(data)
        self.task = tasks.setup_task(cfg.task)
        self.task.load_dataset(subset, combine=False, epoch=1, task_cfg=cfg.task)
        self.model = build_checked(self.task, cfg.model, state["model"])
        self.model.load_state_dict(OrderedDict(state["model"]), strict=True, model_cfg=cfg.model)
        self.model.eval()
        itr = self.task.get_batch_iterator(
            dataset=self.task.dataset(subset), max_tokens=max_tokens,
            max_positions=utils.resolve_max_positions(self.task.max_positions(), self.model.max_positions()),
            ignore_invalid_inputs=True, required_batch_size_multiple=1, seed=1, num_workers=0,
        ).next_epoch_itr(shuffle=False)
        self.batches = list(itertools.islice(itr, max_batches))
        if not self.batches:
            raise ValueError(f"no validation batches in {data} ({subset})")
        self.pad = self.task.target_dictionary.pad()
        self.owners = {}  # stack -> module owning ``layers``
        for key in state["model"]:
            match = _LAYER.search(key)
            if match:
                path = key[: match.start()]  # e.g. "encoder.sentence_encoder"
                self.owners.setdefault(key.split(".", 1)[0], self.model.get_submodule(path))

    @contextlib.contextmanager
    def _subset(self, keep: Dict[str, List[int]]):
        with contextlib.ExitStack() as stack:
            for name, idx in keep.items():
                stack.enter_context(only_layers(self.owners[name], idx))
            yield

    @torch.no_grad()
    def loss(self, keep: Dict[str, List[int]]) -> float:
        total, count = 0.0, 0
        with self._subset(keep):
            for sample in self.batches:
                net_output = self.model(**sample["net_input"])
                lprobs = self.model.get_normalized_probs(net_output, log_probs=True, sample=sample)
                target = self.model.get_targets(sample, net_output)
                mask = target.ne(self.pad)
                nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                total += nll[mask].double().sum().item()
                count += int(mask.sum())
        return total / max(count, 1) / math.log(2)


def greedy_search(evaluator: ValidLoss, layers: Dict[str, int], targets: Dict[str, int],
                  quiet: bool = False) -> (Dict[str, List[int]], list):
    """Remove layers one at a time until each stack in ``targets`` has its target depth.

    Returns the kept indices per searched stack and the history
    ``[{"stack", "removed", "loss"}, ...]`` (the first entry, ``removed=None``, is the full model).
    """
    current = {stack: list(range(layers[stack])) for stack in targets}
    out = sys.stdout
    base = evaluator.loss(current)
    history = [{"stack": None, "removed": None, "loss": base}]
    print(f"search-on-valid: all layers: valid loss {base:.4f} bits/token", file=out)
    bar = tqdm(total=0, desc="search-on-valid", unit="trial", file=sys.stderr, disable=quiet)
    while any(len(current[s]) > targets[s] for s in targets):
        candidates = [(s, i) for s in targets if len(current[s]) > targets[s] for i in current[s]]
        bar.total += len(candidates)
        bar.refresh()
        best = None
        for stack, i in candidates:
            trial = dict(current, **{stack: [j for j in current[stack] if j != i]})
            loss = evaluator.loss(trial)
            bar.update(1)
            if best is None or loss < best[0]:
                best = (loss, stack, i)
        loss, stack, i = best
        current[stack].remove(i)
        history.append({"stack": stack, "removed": i, "loss": loss})
        bar.clear()
        print(f"search-on-valid: removed {stack} layer {i}: valid loss {loss:.4f} bits/token "
              f"(kept {stack} {current[stack]})", file=out)
    bar.close()
    return current, history
