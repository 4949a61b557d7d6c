"""`--fsdp`: the frozen base weights of the network being trained, sharded across the ranks of
a torchrun run while TrainLoraNode trains (docs/distributed-training.md).

Without it every rank holds the whole network for the whole run. With it, for the length of
the training loop, each rank keeps 1/N of every frozen weight: FSDP2 (`fully_shard`) splits
the network into units (the blocks at depth 2, as checkpoint_depth counts them, then the root
for what is left), and all-gathers a unit's weights just before its forward (and again before
its backward), freeing them after. The adapters are not sharded (`ignored_params`): they are
small, and DistributedDataParallel keeps them identical on every rank as in a plain torchrun
run, so the math, and the LoRA file, are the same with or without `--fsdp` (within fp
tolerance: the all-gathered weights are exact copies).

After training the rest of the workflow (saving, sampling with the new LoRA, another training
node) gets the network as it was: every weight gathered back whole, in place (same modules,
same names, bitwise the values it had), FSDP's classes, hooks and state removed. FSDP2 has no
"undo": `_unshard` takes off what `fully_shard` put on: the module's class and the hooks it
registered (both against a snapshot taken before), its attributes (by name) and the entry in
torch's registry of composable state (private to torch: pinned by the test of this module,
tests/lora/test_fsdp.py, which trains twice on the same network). After a failure
nothing is gathered (a peer may be gone, and a collective would wait for it): FSDP's classes
and hooks are taken off, so the rest of the clean-up (adapters, checkpointing) runs as usual,
but this process's copy of the network keeps only its shards; the run stops on every rank
(comfyless/distributed.py) anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..memory import return_freed_memory

# The attributes FSDP2 (torch 2.13) sets on the modules it manages: two flags, and its state
# under keys starting with the prefix.
_FSDP_ATTRS = ("_is_fsdp_managed_module", "_fsdp_use_orig_params")
_FSDP_STATE_PREFIX = "__composable_api_state_key"
# Where a module keeps its hooks: any hook fully_shard registered is taken off again.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_backward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")


class ShardingError(ValueError):
    """The network cannot be sharded as it is (said before any rank trains)."""


@dataclass
class _Snapshot:
    """What a module looked like before fully_shard, to take FSDP off again."""

    cls: type
    hooks: dict[str, set[int]]


def shard_units(root: nn.Module, depth_two: Sequence[nn.Module]) -> list[nn.Module]:
    """The modules sharded as one unit each: the depth-2 blocks holding a frozen weight (the
    root takes the rest)."""
    return [m for m in depth_two if m is not root and any(True for _ in m.parameters())]


def check_shardable(units: Iterable[nn.Module], root: nn.Module,
                    ignored: set[nn.Parameter]) -> None:
    """FSDP2 all-gathers a unit's weights in one collective, so they must share a dtype (the
    root's unit: the weights no other unit holds)."""
    names = {m: n for n, m in root.named_modules()}
    in_units = {p for u in units for p in u.parameters()}
    groups = [(f"block {names[u]}", list(u.parameters())) for u in units]
    groups.append(("the network", [p for p in root.parameters() if p not in in_units]))
    for name, params in groups:
        dtypes = {p.dtype for p in params if p not in ignored}
        if len(dtypes) > 1:
            shown = ", ".join(sorted(str(d).replace("torch.", "") for d in dtypes))
            raise ShardingError(
                f"--fsdp: {name} holds weights of several dtypes ({shown}); FSDP shards a "
                "block's weights together and needs one dtype. Load the model with one "
                "weight_dtype, or train without --fsdp")


@contextmanager
def sharded(root: nn.Module, units: Sequence[nn.Module], ignored: set[nn.Parameter],
            device_type: str) -> Iterator[None]:
    """`root`'s frozen weights sharded over the default process group inside the block;
    gathered back whole (in place) after it, unless the block raised."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    check_shardable(units, root, ignored)
    snapshots = {m: _snapshot(m) for m in root.modules()}
    mesh = init_device_mesh(device_type, (torch.distributed.get_world_size(),))
    for unit in [*units, root]:  # bottom-up: a unit's weights are not also the root's
        fully_shard(unit, mesh=mesh, ignored_params=ignored)
    return_freed_memory()  # the whole weights just freed: back to the OS, not kept in the heap
    try:
        yield
    except BaseException:  # nothing gathered (see the module docstring); the classes and
        _unshard(root, snapshots)  # hooks go, so undoing the adapters cannot fail
        raise
    _gather(root)
    _unshard(root, snapshots)


def _snapshot(module: nn.Module) -> _Snapshot:
    return _Snapshot(type(module), {k: set(getattr(module, k)) for k in _HOOK_DICTS})


def _gather(root: nn.Module) -> None:
    """Every sharded weight whole again on every rank (one all-gather per tensor; same
    order on every rank: module order), as a plain frozen Parameter under its own name."""
    from torch.distributed.tensor import DTensor

    for module in root.modules():
        for name, param in list(module._parameters.items()):
            if isinstance(param, DTensor):
                whole = param.full_tensor().detach()
                module._parameters[name] = nn.Parameter(whole, requires_grad=False)


def _unshard(root: nn.Module, snapshots: dict[nn.Module, _Snapshot]) -> None:
    """FSDP's class, hooks, attributes and registry entry off every module."""
    from torch.distributed import _composable_state  # where fully_shard registers a module

    for module, before in snapshots.items():
        _composable_state._module_state_mapping.pop(module, None)
        module.__class__ = before.cls
        for key in [k for k in module.__dict__
                    if k in _FSDP_ATTRS or k.startswith(_FSDP_STATE_PREFIX)]:
            del module.__dict__[key]
        for dict_name, keys in before.hooks.items():
            hooks = getattr(module, dict_name)
            for key in set(hooks) - keys:
                del hooks[key]
