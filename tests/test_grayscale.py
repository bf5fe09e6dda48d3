"""1-channel (grayscale) models: an Ultralytics checkpoint trained with `channels: 1` converts, verifies and
runs; the metadata records one channel and the runtime feeds the frame's luminance."""

import cv2
import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.converters.convert import convert_many
from edgekit.meta import InputSpec
from edgekit.runtimes.preprocess import Preprocessor, preprocess

from checkpoints import random_ultralytics, write_ultralytics_checkpoint


@pytest.fixture(scope="module")
def gray_artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray")
    ckpt = write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=3, channels=1), root / "gray26.pt")
    results = convert_many(ckpt, "onnx,openvino,tflite,coreml", "fp32", 128, root / "out", topk="runtime")
    assert [r.ok for r in results] == [True] * 4, [r.error for r in results]
    return {r.format: r for r in results}


@pytest.mark.convert
def test_grayscale_checkpoint_converts_and_verifies_everywhere(gray_artifacts):
    for fmt, result in gray_artifacts.items():
        assert result.verification.passed and result.verification.max_abs["scores"] <= 2e-5, fmt
    detector = edgekit.load(gray_artifacts["onnx"].path)
    assert detector.meta.input.channels == 1 and detector.engine.inputs[0].shape == (1, 1, 128, 128)
    tflite = edgekit.load(gray_artifacts["tflite"].path)
    assert tflite.meta.input.channels == 1 and tflite.engine.inputs[0].shape == (1, 128, 128, 1)


@pytest.mark.convert
def test_the_runtime_feeds_luminance_and_every_engine_agrees(gray_artifacts):
    image = cv2.imread(str(assets.shapes_image()))
    onnx, tflite, openvino = (edgekit.load(gray_artifacts[f].path) for f in ("onnx", "tflite", "openvino"))
    spec = onnx.meta.input
    x, _ = preprocess(image, spec, (128, 128))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    boxed, _ = preprocess(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), spec, (128, 128))  # same luminance, as BGR
    assert x.shape == (1, 1, 128, 128) and np.abs(x - boxed).max() <= 1 / 255 + 1e-6
    np.testing.assert_array_equal(Preprocessor(spec, (128, 128))(image)[0], x)
    rgb, _ = preprocess(image[:, :, ::-1].copy(), spec, (128, 128), rgb=True)
    np.testing.assert_array_equal(rgb, x)
    reference = onnx.engine.run({spec.name: x})
    nhwc, _ = preprocess(image, tflite.meta.input, (128, 128))
    for other, tensor in ((tflite, nhwc), (openvino, x)):
        out = other.engine.run({other.meta.input.name: tensor})
        for name in ("boxes", "scores"):  # same raw outputs on every engine: the same gray input went in
            np.testing.assert_allclose(out[name], reference[name], atol=1e-4)
    assert len(onnx(image, conf=0.2)) > 0


def test_a_three_channel_model_still_takes_gray_frames():
    spec = InputSpec()
    gray = np.full((60, 80), 100, np.uint8)
    x, _ = preprocess(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), spec, (64, 64))
    assert x.shape == (1, 3, 64, 64)
    detector = edgekit.load(assets.shapes_model())
    assert len(detector(gray)) == len(detector(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
