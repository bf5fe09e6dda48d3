"""TFLite (LiteRT), from the deploy module with litert-torch, NHWC input: FP32, FP16 weights, full INT8 with
int8 input and outputs whose (scale, zero_point) go into the metadata (ai-edge-quantizer, the decode region
in float). The metadata lives in the flatbuffer.

``phone=True`` makes the file MediaPipe Tasks' ObjectDetector runs as is (see ``phone.py``);
``uint8_input=True`` takes raw uint8 pixels with the 0..1 scaling inside the graph.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.converters.backends.base import Backend
from edgekit.converters.verify import Verification
from edgekit.errors import EdgekitError
from edgekit.logs import get_logger
from edgekit.meta import ModelMeta, OutputSpec

FLOAT_IO = "float input and outputs"  # the first thing the accuracy search keeps in float: no int8 interface


@dataclass(frozen=True)
class TFLiteOptions:
    """TFLite's own options."""

    phone: bool = False  # TFLite for MediaPipe: encodings + scores into TFLite_Detection_PostProcess
    uint8_input: bool = False  # raw uint8 NHWC pixels in, the 0..1 scaling inside the graph


class TFLiteBackend(Backend):
    """TFLite, run by LiteRT (ai-edge-litert)."""

    name = "tflite"
    extra = "tflite"
    suffix = ".tflite"
    Options = TFLiteOptions

    def fp32_tflite(self) -> Path:
        """The FP32 .tflite every TFLite target of this conversion starts from (made once); for phone files
        it ends in the post-process op's inputs (box encodings, scores)."""
        from edgekit.converters.backends.tflite.export import export_tflite

        def make() -> Path:
            path = self.ctx.workdir / ("base-phone.tflite" if self.options.phone else "base.tflite")
            model = self.ctx.deploy
            if self.options.phone:
                from edgekit.converters.backends.tflite.phone import PhoneHead

                model = PhoneHead(model)
            export_tflite(model, self.ctx.imgsz, path, self.options.uint8_input, self.ctx.meta.input.channels)
            return path

        key = f"tflite-fp32-phone{self.options.phone}-uint8{self.options.uint8_input}"
        return self.ctx.once(key, make)

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        from edgekit.converters.backends.tflite.export import quantize_tflite

        if self.ctx.nms_in_graph:
            raise EdgekitError("in-graph NMS is not available for TFLite (--phone builds MediaPipe's post-process op)")
        if self.options.phone and self.ctx.meta.input.channels != 3:
            raise EdgekitError("--phone: MediaPipe feeds RGB frames; this model takes one (grayscale) channel")
        if precision == "int8" and self.options.uint8_input:
            raise EdgekitError("--uint8-input applies to FP32/FP16 TFLite; INT8 TFLite already takes integer input")
        base = self.fp32_tflite()
        accuracy = None
        if precision == "fp32":
            shutil.copyfile(base, tmp)
        elif precision == "int8" and self.ctx.accuracy is not None and self.ctx.accuracy.max_drop is not None:
            accuracy = self._within_budget(base, tmp)
        else:
            calibration = self._nhwc_calibration() if precision == "int8" else None
            quantize_tflite(base, tmp, precision, calibration)
        meta = self._finish(tmp, precision)
        return replace(meta, accuracy=accuracy) if accuracy else meta

    def _nhwc_calibration(self) -> list:
        return self.ctx.once(
            "tflite-calibration", lambda: [x.transpose(0, 2, 3, 1).copy() for x in self.ctx.calibration()]
        )

    def _within_budget(self, base: Path, tmp: Path) -> dict:
        """INT8 whose mAP50-95 drop fits --max-drop: the ops whose quantization adds the most error kept in float,
        as few as the budget allows (converters.accuracy)."""
        from edgekit.converters.accuracy import RANKING_IMAGES, detector_points, search_float_layers
        from edgekit.converters.backends.tflite.export import quantize_tflite, tflite_ranking
        from edgekit.runtimes.detector import Detector

        calibration = self._nhwc_calibration()
        metas: dict[Path, ModelMeta] = {}

        def quantize(exclude: list[str]) -> Path:
            path = self.ctx.workdir / f"tflite-int8-phone{self.options.phone}-float{len(exclude)}.tflite"
            if path not in metas:
                ops = [name for name in exclude if name != FLOAT_IO]
                quantize_tflite(base, path, "int8", calibration, ops)
                if FLOAT_IO in exclude:  # int8 boxes cost localization at high IoU: float input and outputs
                    from edgekit.converters.backends.tflite.export import read_model, write_model
                    from edgekit.converters.backends.tflite.phone import float_interface

                    model = read_model(path)
                    float_interface(model)
                    write_model(model, path)
                raw = path.with_suffix(".raw.tflite")
                shutil.copyfile(path, raw)  # the quantized network alone, for the ranking
                metas[path] = self._finish(path, "int8")
            return path

        def measure(path: Path) -> float:
            return detector_points(Detector(self.engine(path), metas[path]), self.ctx.accuracy)

        few = calibration[:: max(1, len(calibration) // RANKING_IMAGES)][:RANKING_IMAGES]
        plain = quantize([])
        ranking = [FLOAT_IO, *tflite_ranking(base, plain.with_suffix(".raw.tflite"), few)]
        found = search_float_layers(quantize, measure, ranking, self.accuracy_reference(), self.ctx.accuracy.max_drop)
        shutil.copyfile(found.path.with_suffix(".raw.tflite"), tmp)  # write() finishes it, as any other
        return {"map50_95": found.points, "float_layers": found.float_layers}

    def accuracy_reference(self) -> float:
        """For a phone file, the FP32 phone file's mAP50-95 points on the accuracy data. Its post-process op
        drops every row below the model's conf (what MediaPipe is given), which costs mAP50-95 against the
        checkpoint's conf-0.001 val points whatever the precision (the YOLO26 fixture's ONNX file: 55.9 at conf
        0.001, 48.3 at 0.25), so only the same op in float measures what INT8 itself loses."""
        if not self.options.phone:
            return super().accuracy_reference()
        from edgekit.converters.accuracy import detector_points
        from edgekit.runtimes.detector import Detector

        def make() -> float:
            path = self.ctx.workdir / "tflite-fp32-phone-reference.tflite"
            shutil.copyfile(self.fp32_tflite(), path)
            meta = self._finish(path, "fp32")
            points = detector_points(Detector(self.engine(path), meta), self.ctx.accuracy)
            get_logger("edgekit.convert").info(
                f"accuracy FP32 phone file (the INT8 budget's reference): mAP50-95 {points:.2f} on "
                f"{len(self.ctx.accuracy.images)} images of {self.ctx.accuracy.name}"
            )
            return points

        return self.ctx.once("tflite-phone-fp32-points", make)

    def _finish(self, tmp: Path, precision: str) -> ModelMeta:
        """Metadata, and for phone files the post-process op and MediaPipe's metadata, on a written network."""
        from edgekit.converters.backends.tflite.export import finalize_tflite

        meta = self._meta(precision)
        if self.options.phone:
            from edgekit.converters.backends.tflite.phone import append_postprocess

            append_postprocess(tmp, meta)
        finalize_tflite(tmp, meta.input.name, meta.outputs.names, meta.to_json())
        meta = self._with_quant(tmp, meta)
        if self.options.phone:
            from edgekit.converters.backends.tflite.phone import add_mediapipe_metadata

            self._check_phone_input(meta)
            add_mediapipe_metadata(tmp, meta)
        return meta

    def _meta(self, precision: str) -> ModelMeta:
        spec = replace(self.ctx.meta.input, layout="NHWC")
        if self.options.uint8_input:
            spec = replace(spec, dtype="uint8", range=(0.0, 255.0))
        meta = replace(self.ctx.meta, input=spec, precision=precision)
        if self.options.phone:
            from edgekit.converters.backends.tflite.phone import OUTPUT_NAMES

            meta = replace(
                meta,
                outputs=OutputSpec(kind="postprocess", names=list(OUTPUT_NAMES)),
                decode=replace(meta.decode, method="none"),
            )
        return meta

    @staticmethod
    def _check_phone_input(meta: ModelMeta) -> None:
        if meta.input.dtype not in ("float32", "uint8"):
            raise EdgekitError(
                f"MediaPipe feeds float32 or uint8 images; this model takes {meta.input.dtype} "
                "(INT8 --phone needs a float or uint8 input)"
            )

    @staticmethod
    def _with_quant(path: Path, meta: ModelMeta) -> ModelMeta:
        from edgekit.converters.backends.tflite.export import finalize_tflite, io_quantization

        input_quant, output_quant = io_quantization(path)
        if input_quant is None and not output_quant:
            return meta
        spec = meta.input if input_quant is None else replace(meta.input, dtype="int8", quant=input_quant)
        meta = replace(meta, input=spec, outputs=replace(meta.outputs, quant=output_quant or None))
        finalize_tflite(path, meta.input.name, meta.outputs.names, meta.to_json())
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.litert import LiteRTEngine

        return LiteRTEngine(path)

    def fp32_engine(self):
        return self.engine(self.fp32_tflite()), self._meta("fp32")

    def verify(self, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        if not self.options.phone:
            return super().verify(tmp, meta, precision)
        from edgekit.converters.backends.tflite.phone import verify_phone

        return verify_phone(self.ctx, self.engine(tmp), tmp, meta, precision)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        from edgekit.converters.backends.tflite.export import finalize_tflite

        finalize_tflite(tmp, meta.input.name, meta.outputs.names, meta.to_json())  # drops MediaPipe's files
        if meta.outputs.kind == "postprocess":
            from edgekit.converters.backends.tflite.phone import add_mediapipe_metadata

            add_mediapipe_metadata(tmp, meta)  # so they are written again, last


__all__ = ["TFLiteBackend", "TFLiteOptions"]
