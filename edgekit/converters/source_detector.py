"""A checkpoint run in torch the way a Detector runs an artifact: the artifact's preprocessing and decoding
around the checkpoint's forward pass. `edgekit val CHECKPOINT` and the INT8 accuracy budget use it as the
reference an artifact is measured against.

The forward pass is the deploy form by default: the very module the converters export (``make_deploy``:
BatchNorm folded, RepConvs re-parameterized, training-only branches and the unused head removed), run in
inference mode. It is the same function as the training form, checked when the detector is made: both run on
the first image every conversion verifies on (the bundled shapes image) at the detector's input size, and
their outputs must agree within the FP32 tolerances of conversion (``verify.FP32_TOLERANCE``, top-k rows
tie-aware), else EdgekitError. The training form (``form="training"``) runs every unfused branch (and, for
an end-to-end head, the network twice per image); docs/accuracy.md times both forms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekit import __version__, assets
from edgekit.converters.source import SourceModel
from edgekit.converters.verify import FP32_TOLERANCE, Verification, compare
from edgekit.detections import Detections
from edgekit.errors import EdgekitError
from edgekit.fileio import sha256_file
from edgekit.images import read_image
from edgekit.meta import Letterbox, ModelMeta, SourceInfo
from edgekit.runtimes.decode import decode_outputs
from edgekit.runtimes.detector import Timings
from edgekit.runtimes.preprocess import preprocess

FORMS = ("deploy", "training")  # what a SourceDetector runs: the exported module, or the checkpoint as trained


def artifact_meta(source: SourceModel, imgsz: Sequence[int], checksum: bool = True) -> ModelMeta:
    """The metadata an artifact of `source` at input size `imgsz` (height, width) carries."""
    return ModelMeta(
        family=source.family,
        variant=source.variant,
        classes=list(source.classes),
        imgsz=[int(v) for v in imgsz],
        input=source.input,
        outputs=source.outputs,
        decode=source.decode,
        stride=source.stride,
        source=SourceInfo(source.path.name, sha256_file(source.path) if checksum else "", __version__)
        if source.path
        else None,
        random_weights=source.random_weights,
    )


class SourceDetector:
    """``detector(image)`` -> Detections, computed by the checkpoint in float32 torch.

    `imgsz` is (height, width), multiples of the model's stride; `letterbox` how an image is fitted to it
    when not the source's own (a phone file's stretch, as MediaPipe feeds it). `form` is ``deploy`` (the
    module the converters export, checked against the training form here: ``check`` holds the figures) or
    ``training`` (the training form's own forward pass, unchecked: it is what the check compares with). Stage
    times of the last call are in ``timings`` (milliseconds), as on a Detector. Raises EdgekitError when the
    deploy form's outputs differ from the training form's beyond the FP32 tolerances of conversion.
    """

    def __init__(
        self,
        source: SourceModel,
        imgsz: Sequence[int],
        notes: Sequence[str] = (),
        letterbox: Letterbox | None = None,
        form: str = "deploy",
    ):
        if form not in FORMS:
            raise ValueError(f"form {form!r}: one of {', '.join(FORMS)}")
        self.source = source
        self.form = form
        self.meta = artifact_meta(source, imgsz, checksum=False)
        if letterbox is not None:
            self.meta = replace(self.meta, input=replace(self.meta.input, letterbox=letterbox))
        self.notes = list(notes)  # lines saying which input size, head and form were chosen, and why
        self.conf, self.iou, self.max_det = source.decode.conf, source.decode.iou, source.decode.max_det
        self.multi_label = source.decode.multi_label
        self.timings = Timings()
        self.check: Verification | None = None
        self._deploy: torch.nn.Module | None = None
        if form == "deploy":
            with torch.no_grad():
                self._deploy = source.make_deploy()
            self.check = self._check_deploy()
            self.notes.append(
                "form     deploy (fused, one head, as the converters export it), checked against the training form "
                f"on the bundled shapes image: {self.check.summary()}"
            )

    @property
    def names(self) -> list[str]:
        return self.meta.classes

    def __repr__(self) -> str:
        m = self.meta
        return f"SourceDetector({m.family} {m.variant}, torch fp32 {self.form} form, {m.imgsz[0]}x{m.imgsz[1]})"

    def forward(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """The contract's outputs (float32, by name) for a preprocessed input [1, C, H, W], in this detector's form."""
        x = torch.from_numpy(tensor)
        with torch.inference_mode():
            if self._deploy is None:
                outputs = self.source.reference(x)
            else:
                out = self._deploy(x)
                outputs = dict(zip(self.meta.outputs.names, (out,) if isinstance(out, torch.Tensor) else out))
        return {name: outputs[name].float().numpy() for name in self.meta.outputs.names}

    def _check_deploy(self) -> Verification:
        """The deploy form against the training form on the bundled shapes image, at FP32 tolerances."""
        tensor, _ = preprocess(read_image(assets.shapes_image()), self.meta.input, tuple(self.meta.imgsz))

        def training(x: np.ndarray) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                return {k: v.float().numpy() for k, v in self.source.reference(torch.from_numpy(x)).items()}

        check = compare(training, self.forward, [tensor], FP32_TOLERANCE, backend="torch deploy form")
        if not check.passed:
            raise EdgekitError(
                f"{self.source.name}: the deploy form differs from the training form ({check.failures()}) on the "
                "bundled shapes image; this is a bug in edgekit's deploy transform, please report it"
            )
        return check

    def __call__(
        self, image: np.ndarray, *, conf: float | None = None, iou: float | None = None, max_det: int | None = None
    ) -> Detections:
        """Detect objects in one BGR HxWx3 uint8 image (source pixels out)."""
        t0 = time.perf_counter()
        tensor, info = preprocess(image, self.meta.input, tuple(self.meta.imgsz))
        t1 = time.perf_counter()
        raw = self.forward(tensor)
        t2 = time.perf_counter()
        found = decode_outputs(
            self.meta,
            raw,
            [info],
            conf=self.conf if conf is None else conf,
            iou=self.iou if iou is None else iou,
            max_det=self.max_det if max_det is None else max_det,
            multi_label=self.multi_label,
        )[0]
        t3 = time.perf_counter()
        self.timings = Timings(pre=(t1 - t0) * 1e3, infer=(t2 - t1) * 1e3, post=(t3 - t2) * 1e3)
        return found


def open_source_detector(
    spec: str | Path,
    imgsz: int | Sequence[int] | None = None,
    form: str = "deploy",
    threads: int | None = None,
    **source_options,
) -> SourceDetector:
    """A SourceDetector for a checkpoint file in `form` (options as ``open_source`` takes them, e.g. ``names``,
    ``topk``); `threads` sets torch's intra-op threads, for the whole process (None: torch's default).

    `imgsz` None runs at the size the checkpoint was trained at (640 when it records none); the detector's
    ``notes`` say which size, head and form it runs, and why. Raises EdgekitError as ``open_source`` does, for
    a size off the model's stride, and for a deploy form that fails its check.
    """
    from edgekit.converters.families import open_source

    if threads is not None:
        torch.set_num_threads(threads)
    names = source_options.pop("names", None)
    source = open_source(spec, names=names, **source_options)
    size, size_note = source.input_size(imgsz)
    return SourceDetector(source, size, source.choices(size_note), form=form)


def reference_detector(source: SourceModel, meta: ModelMeta) -> SourceDetector:
    """The FP32 reference an artifact with metadata `meta` is measured against (the INT8 budget): the source in
    its checked deploy form at the artifact's input size, each image fitted to it as the artifact fits it (a
    phone file's stretch, as MediaPipe feeds it, else the letterbox)."""
    return SourceDetector(source, meta.imgsz, letterbox=meta.input.letterbox)
