"""Trainable adapters attached to a torch model: LoRA, LoHa, LoKr, OFT, plus 1-D/bias diffs.

`add_adapters(model, algorithm, rank, ...)` walks `model.named_modules()` and attaches, like
ComfyUI's trainer (train-nodes.md §4.3 step 12):
* Linear / Conv1d-3d weights (>= 2-D): an adapter of the chosen algorithm, as a
  `torch.nn.utils.parametrize` weight function (or, with `bypass=True`, a forward hook that
  adds the adapter's output path computed from the layer input, and the layer's bias diff:
  the form training uses, with no weight-sized tensor or gradient per step);
* 1-D weights (GroupNorm, LayerNorm, ...): a zero `diff` added to the weight;
* every bias: a zero `diff_b` added to the bias.

Deliberate differences from ComfyUI (spec/DECISIONS.md): alpha is a fixed buffer (1.0 for new
adapters, never trained); init is the conventional one (the factor next to the output is zero,
the other random, drawn from the caller's generator so the same seed gives the same file);
resuming from `existing` restores every tensor of the file, alpha and diffs included.

`AdapterSet.state_dict()` uses ComfyUI's SaveLoRA key layout (lora-format.md §2.1):
`<prefix><module>.lora_up.weight`, `.lora_down.weight` (2-D also for convs), `.alpha`,
`.hada_w1_a`..., `.lokr_w1`/`.lokr_w2`, `.oft_blocks`, `.diff`, `.diff_b`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .kinds import Patch, bypass_delta_out, factorization, merged_weight, oft_rotate_output

ADAPTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Layers whose 1-D weight gets a `diff` (their biases, like every bias, get a `diff_b`).
NORM_LAYERS = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.RMSNorm)


class RankTooLarge(ValueError):
    """The requested rank is bigger than a layer can use; names the layer and the limit."""

    def __init__(self, module: str, rank: int, shape: tuple[int, ...], limit: int) -> None:
        super().__init__(
            f"rank {rank} is too large for layer '{module}' (weight {list(shape)}): each "
            f"factor would be larger than the weight itself; use a rank of at most {limit}"
        )
        self.module, self.rank, self.shape, self.limit = module, rank, shape, limit


class _Factor(nn.Module):
    """Holds one factor as `.weight`, so state_dict keys read `lora_up.weight` as in the file."""

    def __init__(self, t: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(t)


def _kaiming(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    t = torch.empty(shape)
    nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)
    return t


class Adapter(nn.Module):
    """Base: a weight function W -> W' for one layer, its bypass form, and its patch view."""

    kind: ClassVar[str]
    algorithm: ClassVar[str]

    def __init__(self, alpha: float | None) -> None:
        super().__init__()
        # fixed, not trained (DECISIONS.md); None = no alpha in the file (scale 1.0)
        self.register_buffer("alpha", None if alpha is None else torch.tensor(float(alpha)))
        self._alpha_value: float | None = None  # float(alpha), read once per device/dtype

    def _apply(self, fn, *args, **kwargs):
        self._alpha_value = None  # .to() may round alpha (bf16): read it again
        return super()._apply(fn, *args, **kwargs)

    def _alpha_float(self) -> float | None:
        # cached: float() of a GPU buffer is a host sync, once per adapted layer and forward
        if self.alpha is None:
            return None
        if self._alpha_value is None:
            self._alpha_value = float(self.alpha)
        return self._alpha_value

    def _tensors(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def patch(self) -> Patch:
        """A Patch over the live parameters (gradients flow through it)."""
        return Patch(self.kind, self._tensors(), self._alpha_float())

    def forward(self, weight: Tensor) -> Tensor:
        return merged_weight(self.patch(), weight, 1.0)

    def bypass(self, layer: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The layer output with this adapter applied, from its input x and plain output y."""
        return y + bypass_delta_out(self.patch(), layer, x, layer.weight).to(y.dtype)

    @classmethod
    def create(
        cls, shape: tuple[int, ...], rank: int, generator: torch.Generator | None
    ) -> Adapter:
        raise NotImplementedError

    @classmethod
    def from_tensors(cls, t: dict[str, Tensor]) -> Adapter | None:
        """The adapter stored in a file's tensors for one module, or None if not this kind."""
        raise NotImplementedError


class LoRAAdapter(Adapter):
    """W + (alpha/r) up @ down; up [out, r] zero, down [r, in*k] Kaiming-uniform."""

    kind, algorithm = "lora", "LoRA"

    def __init__(self, up: Tensor, down: Tensor, mid: Tensor | None, alpha: float | None):
        super().__init__(alpha)
        self.lora_up, self.lora_down = _Factor(up), _Factor(down)
        self.lora_mid = None if mid is None else _Factor(mid)

    def _tensors(self) -> dict[str, Tensor]:
        t = {"up": self.lora_up.weight, "down": self.lora_down.weight}
        if self.lora_mid is not None:
            t["mid"] = self.lora_mid.weight
        return t

    @classmethod
    def create(cls, shape, rank, generator):
        fan_in = math.prod(shape[1:])
        return cls(torch.zeros(shape[0], rank), _kaiming((rank, fan_in), generator), None, 1.0)

    @classmethod
    def from_tensors(cls, t):
        if "lora_up.weight" not in t or "lora_down.weight" not in t:
            return None
        alpha = _alpha(t)
        mid = t.get("lora_mid.weight")
        return cls(t["lora_up.weight"], t["lora_down.weight"], mid, alpha)


class _NamedAdapter(Adapter):
    """An adapter whose tensors are parameters named as in the file (`names`; some optional)."""

    names: ClassVar[tuple[str, ...]]

    def __init__(self, tensors: dict[str, Tensor], alpha: float | None) -> None:
        super().__init__(alpha)
        for name in self.names:
            if name in tensors:
                self.register_parameter(name, nn.Parameter(tensors[name]))

    def _tensors(self) -> dict[str, Tensor]:
        return {n: getattr(self, n) for n in self.names if hasattr(self, n)}

    @classmethod
    def _from_present(cls, t: dict[str, Tensor]) -> Adapter:
        return cls({n: t[n] for n in cls.names if n in t}, _alpha(t))


class LoHaAdapter(_NamedAdapter):
    """W + (alpha/r) (w1a @ w1b) * (w2a @ w2b); w2a starts at zero (LyCORIS init)."""

    kind, algorithm = "loha", "LoHa"
    names = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")

    @classmethod
    def create(cls, shape, rank, generator):
        out, fan_in = shape[0], math.prod(shape[1:])
        t = {
            "hada_w1_a": torch.randn(out, rank, generator=generator) * 0.1,
            "hada_w1_b": torch.randn(rank, fan_in, generator=generator),
            "hada_w2_a": torch.zeros(out, rank),  # zero: the product starts at zero
            "hada_w2_b": torch.randn(rank, fan_in, generator=generator),
        }
        return cls(t, 1.0)

    @classmethod
    def from_tensors(cls, t):
        if not all(n in t for n in cls.names[:4]):
            return None
        return cls._from_present(t)


class LoKrAdapter(_NamedAdapter):
    """W + kron(w1, w2) with (out, in) factorised by `rank`; alpha stored, unused (full w1/w2)."""

    kind, algorithm = "lokr", "LoKr"
    names = ("lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_t2")

    @classmethod
    def create(cls, shape, rank, generator):
        out_l, out_k = factorization(shape[0], rank)
        in_m, in_n = factorization(shape[1], rank)
        w1 = _kaiming((out_l, in_m), generator)
        w2 = torch.zeros(out_k, in_n, *shape[2:])  # zero: kron starts at zero
        return cls({"lokr_w1": w1, "lokr_w2": w2}, 1.0)

    @classmethod
    def from_tensors(cls, t):
        has1 = "lokr_w1" in t or ("lokr_w1_a" in t and "lokr_w1_b" in t)
        has2 = "lokr_w2" in t or ("lokr_w2_a" in t and "lokr_w2_b" in t)
        if not (has1 and has2):
            return None
        return cls._from_present(t)


class OFTAdapter(Adapter):
    """Blockwise orthogonal rotation of the output rows: W_k' = R_k^T W_k (Cayley of skew B)."""

    kind, algorithm = "oft", "OFT"

    def __init__(self, blocks: Tensor, alpha: float | None) -> None:
        super().__init__(alpha)
        self.oft_blocks = nn.Parameter(blocks)

    def _tensors(self) -> dict[str, Tensor]:
        return {"oft_blocks": self.oft_blocks}

    def bypass(self, layer: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        channel_dim = -1 if isinstance(layer, nn.Linear) else 1
        return oft_rotate_output(self.patch(), y, layer.bias, channel_dim)

    @classmethod
    def create(cls, shape, rank, generator):
        block_size, block_num = factorization(shape[0], rank)
        return cls(torch.zeros(block_num, block_size, block_size), 1.0)

    @classmethod
    def from_tensors(cls, t):
        blocks = t.get("oft_blocks")
        if blocks is None or blocks.dim() != 3:
            return None
        return cls(blocks, _alpha(t))


def _alpha(t: dict[str, Tensor]) -> float | None:
    a = t.get("alpha")
    return None if a is None else float(a)


# The trainer's `algorithm` combo: keys are the choices, values the classes (one source).
ALGORITHMS: dict[str, type[Adapter]] = {
    "LoRA": LoRAAdapter,
    "LoHa": LoHaAdapter,
    "LoKr": LoKrAdapter,
    "OFT": OFTAdapter,
}
# When resuming, adapters are recognised in this order (lora-format.md §1).
_LOAD_ORDER = (LoRAAdapter, LoHaAdapter, LoKrAdapter, OFTAdapter)
_FILE_KEYS: dict[type[Adapter], tuple[str, ...]] = {
    LoRAAdapter: ("lora_up.weight", "lora_down.weight", "lora_mid.weight", "alpha"),
    LoHaAdapter: LoHaAdapter.names + ("alpha",),
    LoKrAdapter: LoKrAdapter.names + ("alpha",),
    OFTAdapter: ("oft_blocks", "alpha"),
}


class _Diff(nn.Module):
    """Additive diff for a 1-D weight or a bias.

    Added in the weight's dtype: ComfyUI adds in the diff's dtype, which with bf16 diffs rounds
    every fp32 norm weight and bias to bf16 on each forward.
    """

    def __init__(self, t: Tensor) -> None:
        super().__init__()
        self.diff = nn.Parameter(t)

    def forward(self, w: Tensor) -> Tensor:
        return w + self.diff.to(w.dtype)


@dataclass
class AdapterSet:
    """The adapters attached to one model; `state_dict()` is the LORA_MODEL to save."""

    model: nn.Module
    algorithm: str
    rank: int
    bypass: bool
    adapters: dict[str, Adapter] = field(default_factory=dict)  # module name -> adapter
    diffs: dict[str, _Diff] = field(default_factory=dict)  # "<module>.diff(_b)" -> diff
    _hooks: list = field(default_factory=list, repr=False)
    _attached: list[tuple[nn.Module, str]] = field(default_factory=list, repr=False)
    # bias diffs added by a bypass hook (not parametrizations): (layer, diff)
    _hooked_diffs: list[tuple[nn.Module, _Diff]] = field(default_factory=list, repr=False)

    def parameters(self) -> list[nn.Parameter]:
        """Every trainable tensor, in module order (alpha excluded: it is fixed)."""
        params = [p for a in self.adapters.values() for p in a.parameters()]
        return params + [d.diff for d in self.diffs.values()]

    def state_dict(self, prefix: str = "diffusion_model.") -> dict[str, Tensor]:
        """Detached copies in ComfyUI's SaveLoRA layout, in the adapters' dtype."""
        out: dict[str, Tensor] = {}
        for name, adapter in self.adapters.items():
            dtype = next(adapter.parameters()).dtype
            for key, t in adapter.state_dict().items():
                out[f"{prefix}{name}.{key}"] = t.detach().to(dtype).clone()
        for key, d in self.diffs.items():
            out[prefix + key] = d.diff.detach().clone()
        return out

    def remove(self) -> None:
        """Detach everything; the model computes with its plain weights again."""
        self._detach(leave=False)

    def merge(self) -> None:
        """Bake the adapters into the model's weights and detach them."""
        self._detach(leave=True)

    def _detach(self, leave: bool) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        if leave and self.bypass:
            modules = dict(self.model.named_modules())
            with torch.no_grad():
                for name, adapter in self.adapters.items():
                    w = modules[name].weight
                    w.copy_(adapter(w))
                for module, diff in self._hooked_diffs:
                    module.bias.copy_(diff(module.bias))
        self._hooked_diffs.clear()
        for module, pname in self._attached:
            parametrize.remove_parametrizations(module, pname, leave_parametrized=leave)
        self._attached.clear()


def _group_existing(existing: dict[str, Tensor], prefix: str) -> dict[str, dict[str, Tensor]]:
    """File keys grouped by module path: {module: {suffix: tensor}} (keys under `prefix`)."""
    suffixes = sorted({s for keys in _FILE_KEYS.values() for s in keys} | {"diff", "diff_b"},
                      key=len, reverse=True)
    groups: dict[str, dict[str, Tensor]] = {}
    for key, t in existing.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for s in suffixes:
            if rest.endswith("." + s):
                groups.setdefault(rest[: -len(s) - 1], {})[s] = t
                break
    return groups


def _check_rank(name: str, shape: tuple[int, ...], rank: int) -> None:
    # A rank above min(out, in*k) is legal (ComfyUI keeps it: rank 8 on the 4-channel conv_out);
    # above max(out, in*k) no factor can be useful, so that is refused.
    limit = max(shape[0], math.prod(shape[1:]))
    if rank > limit:
        raise RankTooLarge(name, rank, shape, limit)


def add_adapters(
    model: nn.Module,
    algorithm: str,
    rank: int,
    *,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    existing: dict[str, Tensor] | None = None,
    bypass: bool = False,
    prefix: str = "diffusion_model.",
) -> AdapterSet:
    """Attach a trainable adapter to every Linear/Conv weight, and diffs to 1-D weights/biases.

    `existing` (a LoRA state dict in ComfyUI layout, keys under `prefix`) is restored tensor by
    tensor; any key it has that finds no layer raises ValueError naming the keys.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {list(ALGORITHMS)}")
    groups = _group_existing(existing or {}, prefix)
    used: set[str] = set()
    aset = AdapterSet(model, algorithm, rank, bypass)
    try:
        for name, module in list(model.named_modules()):
            if isinstance(module, ADAPTED_LAYERS + NORM_LAYERS):
                _attach_module(aset, name, module, groups.get(name, {}), dtype, generator, used)
    except BaseException:
        aset.remove()  # never leave a half-adapted model behind
        raise
    unused = sorted(
        f"{prefix}{m}.{s}" for m, g in groups.items() for s in g if f"{m}.{s}" not in used
    )
    unused += sorted(k for k in (existing or {}) if not k.startswith(prefix))
    if unused:
        aset.remove()
        more = f" (and {len(unused) - 8} more)" if len(unused) > 8 else ""
        shown = ", ".join(unused[:8]) + more
        raise ValueError(f"{len(unused)} key(s) of the existing LoRA match no layer: {shown}")
    return aset


def _attach_module(aset, name, module, found, dtype, generator, used) -> None:
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() >= 2:
        adapter = _make_adapter(aset, name, tuple(weight.shape), found, generator, used)
        adapter.to(device=weight.device, dtype=dtype)
        aset.adapters[name] = adapter
        if aset.bypass:
            _attach_hook(aset, name, module, adapter, found, dtype, used)
            return
        parametrize.register_parametrization(module, "weight", adapter, unsafe=True)
        aset._attached.append((module, "weight"))
    elif isinstance(weight, Tensor) and weight.dim() == 1:
        _attach_diff(aset, name, module, "weight", "diff", found, dtype, used)
    bias = getattr(module, "bias", None)
    if isinstance(bias, Tensor):
        _attach_diff(aset, name, module, "bias", "diff_b", found, dtype, used)


def _attach_hook(aset, name, module, adapter, found, dtype, used) -> None:
    """The adapter and the bias diff as one forward hook: y' = g(y + h(x)) + diff_b.

    The bias diff is added to the output rather than to the bias (the same function): a conv
    whose bias needs a gradient gets its weight gradient computed too by PyTorch's CPU conv
    backward (bias-only costs ~85% of bias+weight), and its frozen weight needs none.
    """
    diff = None
    if isinstance(getattr(module, "bias", None), Tensor):
        diff = _make_diff(aset, name, module, "bias", "diff_b", found, dtype, used)
        aset._hooked_diffs.append((module, diff))
    channel_dim = -1 if isinstance(module, nn.Linear) else 1

    def hook(m: nn.Module, args: tuple, y: Tensor) -> Tensor:
        out = adapter.bypass(m, args[0], y)
        if diff is None:
            return out
        shape = [1] * out.dim()
        shape[channel_dim] = -1
        return out + diff.diff.to(out.dtype).reshape(shape)

    aset._hooks.append(module.register_forward_hook(hook))


def _make_adapter(aset, name, shape, found, generator, used) -> Adapter:
    for cls in _LOAD_ORDER:
        adapter = cls.from_tensors(found) if found else None
        if adapter is not None:
            used.update(f"{name}.{k}" for k in _FILE_KEYS[cls] if k in found)
            try:
                merged_weight(adapter.patch(), torch.zeros(shape), 1.0)
            except RuntimeError as e:
                raise ValueError(
                    f"existing LoRA tensors for layer '{name}' do not fit its weight "
                    f"{list(shape)}: {e}"
                ) from e
            return adapter
    cls = ALGORITHMS[aset.algorithm]
    if cls in (LoRAAdapter, LoHaAdapter):
        _check_rank(name, shape, aset.rank)
    return cls.create(shape, aset.rank, generator)


def _attach_diff(aset, name, module, pname, suffix, found, dtype, used) -> None:
    diff = _make_diff(aset, name, module, pname, suffix, found, dtype, used)
    parametrize.register_parametrization(module, pname, diff, unsafe=True)
    aset._attached.append((module, pname))


def _make_diff(aset, name, module, pname, suffix, found, dtype, used) -> _Diff:
    param = getattr(module, pname)
    t = found.get(suffix)
    if t is not None:
        if t.shape != param.shape:
            raise ValueError(
                f"existing LoRA tensor '{name}.{suffix}' has shape {list(t.shape)}, "
                f"layer needs {list(param.shape)}"
            )
        used.add(f"{name}.{suffix}")
    else:
        t = torch.zeros(param.shape)
    diff = _Diff(t.to(device=param.device, dtype=dtype))
    aset.diffs[f"{name}.{suffix}"] = diff
    return diff
