"""The layer-graph container shared by the yaml-defined families (YOLOv9, Ultralytics).

Each layer knows its index ``i`` and where its input comes from (``f``: an earlier index, a list of them,
or -1 for the previous layer). Parameter names follow the reference (``model.<i>.<...>``). The graph can
be pruned to the layers an output actually needs, which is how training-only branches are stripped.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class Pruned(nn.Module):
    """Placeholder for a layer removed from the graph (keeps later layer indices and names stable)."""

    def forward(self, x):  # pragma: no cover - never reached in a pruned graph
        raise RuntimeError("a pruned layer was executed")


def absolute_sources(i: int, f: int | list[int]) -> list[int]:
    """Absolute layer indices a layer reads from; -1 at layer 0 (or any index < 0 after resolving) is the image."""
    items = [f] if isinstance(f, int) else list(f)
    return [i + j if j < 0 else j for j in items]


class LayerGraph(nn.Module):
    """A model as an ordered list of layers wired by their ``f`` fields; ``model`` holds the layers."""

    def __init__(self, layers: Iterable[nn.Module]):
        super().__init__()
        self.model = nn.Sequential(*layers)
        for i, layer in enumerate(self.model):
            layer.i = i
            layer.sources = absolute_sources(i, layer.f)
        self.active = [i for i, m in enumerate(self.model) if not isinstance(m, Pruned)]
        self._keep = self._needed_later()

    @property
    def head(self) -> nn.Module:
        return self.model[-1]

    def _needed_later(self) -> set[int]:
        keep: set[int] = set()
        for i in self.active:
            layer = self.model[i]
            if isinstance(layer.f, list) or layer.f != -1:
                keep.update(s for s in layer.sources if s >= 0)
        return keep

    def forward(self, x: torch.Tensor):
        outputs: dict[int, torch.Tensor] = {}
        previous = x
        for i in self.active:
            layer = self.model[i]
            if isinstance(layer.f, int) and layer.f == -1:
                inp = previous
            else:
                got = [x if s < 0 else outputs[s] for s in layer.sources]
                inp = got[0] if isinstance(layer.f, int) else got
            previous = layer(inp)
            if i in self._keep:
                outputs[i] = previous
        return previous

    def ancestors(self, roots: Iterable[int]) -> set[int]:
        """Every layer index the given layers depend on, including themselves."""
        seen: set[int] = set()
        stack = [r for r in roots if r >= 0]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(s for s in self.model[i].sources if s >= 0 and s not in seen)
        return seen

    def prune(self, keep: set[int]) -> int:
        """Replace every layer outside `keep` by a placeholder; returns how many were removed."""
        removed = 0
        for i in range(len(self.model)):
            if i not in keep and not isinstance(self.model[i], Pruned):
                placeholder = Pruned()
                placeholder.i, placeholder.f, placeholder.sources = i, self.model[i].f, self.model[i].sources
                self.model[i] = placeholder
                removed += 1
        self.active = [i for i, m in enumerate(self.model) if not isinstance(m, Pruned)]
        self._keep = self._needed_later()
        return removed


def make_divisible(x: float, divisor: int) -> int:
    """The smallest multiple of `divisor` that is >= x."""
    return int(-(-x // divisor) * divisor)


@torch.no_grad()
def probe_strides(model: LayerGraph, size: int = 64, channels: int = 3) -> torch.Tensor:
    """The head's strides, from the feature sizes it receives on a small dummy input of `channels`."""
    head = model.head
    seen: list[torch.Size] = []

    class _Stop(Exception):
        pass

    def grab(_module, inputs):
        seen.extend(t.shape for t in inputs[0])
        raise _Stop

    hook = head.register_forward_pre_hook(grab)
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, channels, size, size))
    except _Stop:
        pass
    finally:
        hook.remove()
        model.train(was_training)
    strides = torch.tensor([size / s[-2] for s in seen[: head.nl]])
    head.stride = strides
    return strides


def set_batchnorm_eps(model: nn.Module, eps: float) -> None:
    """Set the eps of every BatchNorm in `model`."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = eps
