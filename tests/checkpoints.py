"""Write checkpoints the way the reference repositories pickle them, for the converter tests.

The models are edgekit's own definitions; while saving, each module's class is swapped for a stand-in
registered under the reference's module path (``models.common.Conv``, ``models.yolo.DetectionModel``...),
so the pickle names exactly the classes a real checkpoint names. Nothing of the reference is used.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import types
from pathlib import Path

import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and class logits that spread scores from ~0.05 to ~0.95."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.8 + 0.4)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def spread_logits(model: nn.Module, convs: list[nn.Conv2d], seed: int = 0, size: int = 128) -> None:
    """Rescale class-logit convs so, on a random image, logits have a spread of ~2 around -1.5.

    Scores then range from ~0.01 to ~0.95 without saturating at 1.0, so top-k and NMS see distinct,
    meaningful scores (saturated ties would make any selection order valid).
    """
    g = torch.Generator().manual_seed(seed)
    outputs: dict[nn.Conv2d, torch.Tensor] = {}
    hooks = [c.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)) for c in convs]
    was_training = model.training
    model.eval()
    head = model.model[-1]
    with torch.no_grad():
        x = torch.rand(1, getattr(model, "channels", 3), size, size, generator=g)
        model(x)
        if hasattr(head, "mode"):  # end-to-end heads run one branch at a time
            saved, head.mode = head.mode, "o2m"
            model(x)
            head.mode = saved
        for conv in convs:
            out = outputs[conv] - (conv.bias.view(1, -1, 1, 1) if conv.bias is not None else 0)
            conv.weight.mul_(2.0 / max(float(out.std()), 1e-6))
            conv.bias.copy_(torch.randn(conv.out_channels, generator=g) * 0.5 - 1.5)
    for hook in hooks:
        hook.remove()
    model.train(was_training)


@contextlib.contextmanager
def stand_in_modules(models: list[nn.Module], names: dict[type, str]):
    """Temporarily give modules of the mapped types classes registered under reference module paths."""
    created: dict[str, types.ModuleType] = {}
    swapped: list[tuple[nn.Module, type]] = []
    classes: dict[type, type] = {}
    for module in (m for model in models for m in model.modules()):
        cls = type(module)
        if cls not in names:
            continue
        if cls not in classes:
            module_path, _, qualname = names[cls].rpartition(".")
            for depth in range(1, module_path.count(".") + 2):
                part = ".".join(module_path.split(".")[:depth])
                if part not in sys.modules and part not in created:
                    created[part] = types.ModuleType(part)
                    sys.modules[part] = created[part]
            stand_in = type(qualname, (cls,), {"__module__": module_path, "__qualname__": qualname})
            setattr(sys.modules[module_path], qualname, stand_in)
            classes[cls] = stand_in
        swapped.append((module, cls))
        module.__class__ = classes[cls]
    try:
        yield
    finally:
        for module, cls in swapped:
            module.__class__ = cls
        for part in created:
            sys.modules.pop(part, None)


def yolov9_names() -> dict[type, str]:
    from edgekit.models import yolov9
    from edgekit.models import yolov9_blocks as B

    names = {
        yolov9.YOLOv9: "models.yolo.DetectionModel",
        B.DDetect: "models.yolo.DDetect",
        B.DualDDetect: "models.yolo.DualDDetect",
    }
    for cls in (
        B.Conv,
        B.RepConvN,
        B.RepNBottleneck,
        B.RepNCSP,
        B.RepNCSPELAN4,
        B.ELAN1,
        B.AConv,
        B.ADown,
        B.SP,
        B.SPPELAN,
        B.CBLinear,
        B.CBFuse,
        B.Silence,
        B.Concat,
        B.DFL,
    ):
        names[cls] = f"models.common.{cls.__name__}"
    return names


def random_yolov9(arch: str, nc: int = 80, seed: int = 0):
    """A seeded random official-layout YOLOv9 model with meaningful BatchNorm and score spread."""
    from edgekit.models import yolov9

    torch.manual_seed(seed)
    model = yolov9.build(arch, nc)
    randomize(model, seed)
    head = model.head
    branches = [head.cv3] + ([head.cv5] if hasattr(head, "cv5") else [])
    spread_logits(model, [seq[-1] for branch in branches for seq in branch], seed)
    model.names = [f"cls{i}" for i in range(model.nc)]
    return model.eval()


def write_yolov9_checkpoint(
    model: nn.Module, path: Path, ema: bool = True, extra: dict | None = None, imgsz: int = 640
) -> Path:
    """Pickle as the official trainer does: fp16 modules under 'model' (and 'ema'), plus training state (its
    options, with the training size `imgsz`)."""
    half = copy.deepcopy(model).half()
    ckpt = {
        "epoch": -1,
        "best_fitness": None,
        "model": half,
        "ema": copy.deepcopy(half) if ema else None,
        "updates": None,
        "optimizer": None,
        "opt": {"weights": "", "cfg": "yolov9.yaml", "imgsz": imgsz, "save_dir": "runs/train/exp"},
        "git": None,
        "date": "2024-02-21T00:00:00",
        **(extra or {}),
    }
    with stand_in_modules([m for m in (ckpt["model"], ckpt["ema"]) if m is not None], yolov9_names()):
        torch.save(ckpt, path)
    return path


def ultralytics_names(task_class: str = "DetectionModel") -> dict[type, str]:
    from edgekit.models import ultralytics as UM
    from edgekit.models import ultralytics_blocks as U
    from edgekit.models import yolov9_blocks as B

    block = "ultralytics.nn.modules.block."
    names = {
        UM.UltralyticsYOLO: f"ultralytics.nn.tasks.{task_class}",
        U.Detect: "ultralytics.nn.modules.head.Detect",
        U.v10Detect: "ultralytics.nn.modules.head.v10Detect",
        B.Conv: "ultralytics.nn.modules.conv.Conv",
        U.DWConv: "ultralytics.nn.modules.conv.DWConv",
        B.Concat: "ultralytics.nn.modules.conv.Concat",
        B.RepConvN: "ultralytics.nn.modules.conv.RepConv",
        B.RepNCSP: block + "RepCSP",
        B.RepNBottleneck: block + "RepBottleneck",
        U.SPPELAN: block + "SPPELAN",
    }
    for cls in (
        U.Bottleneck,
        U.C2f,
        U.C3,
        U.C3k,
        U.C3k2,
        U.C2PSA,
        U.PSABlock,
        U.Attention,
        U.SPPF,
        U.SCDown,
        U.PSA,
        U.CIB,
        U.C2fCIB,
        U.RepVGGDW,
        B.DFL,
        B.RepNCSPELAN4,
        B.ELAN1,
        B.AConv,
        B.ADown,
        B.CBLinear,
        B.CBFuse,
    ):
        names.setdefault(cls, block + cls.__name__)
    return names


def random_ultralytics(arch: str, nc: int = 80, seed: int = 0, channels: int = 3):
    """A seeded random Ultralytics model (any built-in name: yolov8n, yolo11n, yolov10n, yolo26n...) with meaningful
    statistics; `channels` 1 is a
    grayscale model (``channels: 1`` in its yaml, as Ultralytics trains them)."""
    from edgekit.models import ultralytics

    torch.manual_seed(seed)
    model = ultralytics.build({**ultralytics.CONFIGS[arch], "channels": channels}, nc)
    randomize(model, seed)
    head = model.head
    branches = [head.cv3] + ([head.one2one_cv3] if head.end2end else [])
    spread_logits(model, [seq[-1] for branch in branches for seq in branch], seed)
    if head.reg_max == 1:  # raw distances: random weights give inverted boxes; a trained head gives positive ones
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for branch in [head.cv2] + ([head.one2one_cv2] if head.end2end else []):
                for seq in branch:
                    seq[-1].weight.mul_(0.05)
                    seq[-1].bias.copy_(torch.rand(4, generator=g) * 2 + 0.5)
    model.names = {i: f"cls{i}" for i in range(model.nc)}
    return model.eval()


def write_ultralytics_checkpoint(
    model: nn.Module, path: Path, task_class: str = "DetectionModel", imgsz: int = 640, end2end: bool | None = None
) -> Path:
    """Pickle as Ultralytics' strip_optimizer leaves a trained model: fp16 under 'model', train args (with the
    training size `imgsz`). `end2end` not None saves the head's switch as ``model.end2end = ...`` does (its
    ``_end2end``; a current Ultralytics' trainer leaves False)."""
    half = copy.deepcopy(model).half()
    del half.runs_end2end  # edgekit's reading of the switch below, not in Ultralytics' pickle
    if end2end is not None:
        half.head._end2end = end2end
    ckpt = {
        "date": "2026-01-14T00:00:00",
        "version": "8.4.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "epoch": -1,
        "best_fitness": None,
        "model": half,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {"task": "detect", "model": model.yaml.get("yaml_file", ""), "data": "coco.yaml", "imgsz": imgsz},
        "train_metrics": {"metrics/mAP50-95(B)": 0.4},
        "train_results": None,
    }
    with stand_in_modules([half], ultralytics_names(task_class)):
        torch.save(ckpt, path)
    return path


def random_damo(arch: str, num_classes: int = 80, seed: int = 0):
    """A seeded random DAMO-YOLO model with non-trivial BatchNorm statistics and spread class scores."""
    from edgekit.models import damo

    torch.manual_seed(seed)
    model = damo.build(arch, num_classes)
    randomize(model, seed)
    with torch.no_grad():
        for scale in model.head.scales:
            scale.scale.fill_(0.8 + 0.1 * seed)
    convs = list(model.head.gfl_cls)
    g = torch.Generator().manual_seed(seed)
    outputs: dict[nn.Conv2d, torch.Tensor] = {}
    hooks = [c.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)) for c in convs]
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, 3, 128, 128, generator=g) * 255)
        for conv in convs:
            out = outputs[conv] - conv.bias.view(1, -1, 1, 1)
            conv.weight.mul_(2.0 / max(float(out.std()), 1e-6))
            conv.bias.copy_(torch.randn(conv.out_channels, generator=g) * 0.5 - 1.5)
    for hook in hooks:
        hook.remove()
    return model


def write_damo_checkpoint(model: nn.Module, path: Path, ddp_prefix: bool = False, bare: bool = False) -> Path:
    """Save as DAMO-YOLO's trainer does: {epoch, model: EMA state_dict, optimizer, ...} (or a bare state_dict)."""
    state = {(f"module.{k}" if ddp_prefix else k): v.clone() for k, v in model.state_dict().items()}
    if bare:
        torch.save(state, path)
        return path
    optimizer = torch.optim.SGD([p for p in model.parameters()][:3], lr=0.01, momentum=0.9)
    torch.save({"epoch": 300, "model": state, "optimizer": optimizer.state_dict(), "feature_loss": None}, path)
    return path


def family_checkpoints(root: Path) -> dict[str, Path]:
    """One small seeded checkpoint per family (GELAN-t, YOLO26n, DAMO-YOLO-T; 5 classes) written under `root`, by
    family name (yolov9, yolo26, damo)."""
    return {
        "yolov9": write_yolov9_checkpoint(random_yolov9("gelan-t", nc=5), root / "gelan-t.pt"),
        "yolo26": write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=5), root / "yolo26n.pt"),
        "damo": write_damo_checkpoint(random_damo("damoyolo-t", 5), root / "damo-t.pth"),
    }
