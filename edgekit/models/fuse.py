"""Deploy transforms shared by every family: fold BatchNorm into the preceding convolution."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new biased convolution equal to ``bn(conv(x))`` in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device)
    w = conv.weight.double()
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    fused.weight.copy_((w * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype))
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(bn.running_mean, dtype=torch.float64)
    fused.bias.copy_(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
    return fused


def fold_all_bn(model: nn.Module) -> int:
    """Fold every ``conv``/``bn`` attribute pair of every submodule; returns how many were folded.

    The module's forward must call ``self.bn`` after ``self.conv`` (the convention of the families here);
    ``bn`` becomes an Identity so the forward stays unchanged.
    """
    count = 0
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            module.conv = fold_bn(conv, bn)
            module.bn = nn.Identity()
            count += 1
    return count


@torch.no_grad()
def merge_branches(branches: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]) -> nn.Conv2d:
    """One biased convolution equal to the sum of parallel conv(+BN) branches (RepVGG-style).

    The branches share stride and groups; smaller kernels are zero-padded to the largest, centred, which
    is exact when every branch pads to 'same' size.
    """
    folded = [fold_bn(conv, bn) if bn is not None else conv for conv, bn in branches]
    k = max(c.kernel_size[0] for c in folded)
    base = max(folded, key=lambda c: c.kernel_size[0])
    merged = nn.Conv2d(
        base.in_channels, base.out_channels, k, base.stride, base.padding, base.dilation, base.groups, bias=True
    ).to(base.weight.device)
    weight = torch.zeros_like(merged.weight, dtype=torch.float64)
    bias = torch.zeros(base.out_channels, dtype=torch.float64, device=base.weight.device)
    for conv in folded:
        pad = (k - conv.kernel_size[0]) // 2
        weight += torch.nn.functional.pad(conv.weight.double(), [pad, pad, pad, pad])
        if conv.bias is not None:
            bias += conv.bias.double()
    merged.weight.copy_(weight.to(merged.weight.dtype))
    merged.bias.copy_(bias.to(merged.bias.dtype))
    return merged


def reparameterize(model: nn.Module) -> tuple[int, int]:
    """Collapse every multi-branch block (modules with ``reparameterize()``), then fold every BatchNorm.

    Returns (blocks collapsed, BatchNorms removed in all).
    """
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    blocks = [m for m in model.modules() if hasattr(m, "reparameterize") and m is not model]
    for block in blocks:
        block.reparameterize()
    fold_all_bn(model)
    after = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    return len(blocks), before - after
