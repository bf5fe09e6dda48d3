"""Model facts: parameter count and GFLOPs (2 x multiply-accumulates, counted as thop does)."""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm}


class _MatmulCounter(TorchFunctionMode):
    """Counts the multiply-accumulates of the matrix products a forward runs outside any module (attention)."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in MATMULS:
            self.macs += out.numel() * args[0].shape[-1]
        return out


def count_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(model: nn.Module, imgsz: int | tuple[int, int] = 640, channels: int = 3) -> float:
    """GFLOPs of one forward pass at `imgsz`: 2 x MACs of every convolution and linear layer.

    As thop (ultralytics-thop 2.2) counts: convolutions count their kernel MACs per output element (bias
    free), a separate affine BatchNorm four operations per element, a matrix product (attention) one MAC per
    output element per contracted element; activations and pooling are free.
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    total = 0.0

    def conv_hook(module: nn.Conv2d, _inputs, output):
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    def bn_hook(module: nn.BatchNorm2d, inputs, _output):
        nonlocal total
        total += (4 if module.affine else 2) * inputs[0].numel()

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_hook(bn_hook))
    was_training = model.training
    model.eval()
    counter = _MatmulCounter()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, channels, h, w, dtype=param.dtype if param is not None else torch.float32)
        with counter:
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return 2 * (total + counter.macs) / 1e9
