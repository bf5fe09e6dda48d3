"""Preprocessing driven by metadata: letterbox geometry, colour, range, mean/std, layout, dtype."""

import numpy as np
import pytest

from edgekit.meta import InputSpec, Letterbox
from edgekit.runtimes.preprocess import dequantize, letterbox, preprocess, quantize, to_tensor


@pytest.mark.parametrize("align, pad", [("center", (0, 80)), ("topleft", (0, 0))])
def test_letterbox_geometry(align, pad):
    image = np.full((200, 400, 3), 7, np.uint8)
    out, info = letterbox(image, (320, 320), align, pad_value=114)
    assert out.shape == (320, 320, 3)
    assert info.scale == pytest.approx(0.8) and info.pad == pad
    left, top = pad
    assert (out[top : top + 160, left : left + 320] == 7).all()
    assert (out == 114).sum() == 320 * 160 * 3


def test_letterbox_odd_padding_and_upscale():
    out, info = letterbox(np.zeros((10, 31, 3), np.uint8), (64, 64), "center", 0)
    assert out.shape == (64, 64, 3) and info.scale == pytest.approx(64 / 31)
    assert info.pad == (0, (64 - 21) // 2)


def test_tensor_color_range_layout():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    nchw = to_tensor(image, InputSpec())
    assert nchw.shape == (1, 3, 2, 2) and nchw.dtype == np.float32
    assert nchw[0, 0].max() == 1.0 and nchw[0, 2].max() == 0.0  # RGB: red first
    bgr = to_tensor(image, InputSpec(color="BGR", range=(0.0, 255.0), layout="NHWC"))
    assert bgr.shape == (1, 2, 2, 3) and bgr[0, 0, 0].tolist() == [0, 0, 255]
    from_rgb = to_tensor(image[..., ::-1].copy(), InputSpec(), rgb=True)
    np.testing.assert_array_equal(from_rgb, nchw)


def test_mean_std_half_and_uint8():
    image = np.full((2, 2, 3), 255, np.uint8)
    spec = InputSpec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert to_tensor(image, spec)[0, :, 0, 0].tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert to_tensor(image, InputSpec(dtype="float16")).dtype == np.float16
    raw = to_tensor(image, InputSpec(dtype="uint8", range=(0.0, 255.0), layout="NHWC"))
    assert raw.dtype == np.uint8 and raw.shape == (1, 2, 2, 3) and raw.flags.c_contiguous


def test_int8_input_with_quant_params():
    image = np.array([[[0, 128, 255]]], np.uint8)
    spec = InputSpec(dtype="int8", quant=(1 / 255, -128), color="BGR")
    q = to_tensor(image, spec)
    assert q.dtype == np.int8 and q[0, :, 0, 0].tolist() == [-128, 0, 127]
    np.testing.assert_allclose(dequantize(q, (1 / 255, -128))[0, :, 0, 0], [0, 128 / 255, 1], atol=1e-6)
    assert quantize(np.array([10.0]), (0.01, 0), "int8").tolist() == [127]


def test_preprocess_uses_metadata_letterbox():
    spec = InputSpec(letterbox=Letterbox(align="topleft", pad_value=0))
    tensor, info = preprocess(np.full((100, 50, 3), 255, np.uint8), spec, (64, 64))
    assert info.pad == (0, 0) and tensor[0, :, :, 32:].max() == 0 and tensor[0, :, :, :32].min() == 1.0


def test_stretch_and_floor_rounding():
    image = np.zeros((100, 301, 3), np.uint8)
    out, info = letterbox(image, (64, 128), keep_ratio=False)
    assert out.shape == (64, 128, 3) and info.pad == (0, 0)
    assert info.scales == pytest.approx((128 / 301, 64 / 100))
    rounded, _ = letterbox(np.full((100, 301, 3), 9, np.uint8), (128, 128), "topleft", 0)
    floored, _ = letterbox(np.full((100, 301, 3), 9, np.uint8), (128, 128), "topleft", 0, rounding="floor")
    assert (rounded[:, :, 0] == 9).sum(0).max() == round(100 * 128 / 301) == 43
    assert (floored[:, :, 0] == 9).sum(0).max() == int(100 * 128 / 301) == 42


SPECS = [
    InputSpec(),
    InputSpec(layout="NHWC"),
    InputSpec(color="BGR", range=(0.0, 255.0)),
    InputSpec(letterbox=Letterbox(align="topleft", pad_value=0)),
    InputSpec(letterbox=Letterbox(keep_ratio=False)),
    InputSpec(letterbox=Letterbox(rounding="floor")),
    InputSpec(dtype="uint8", range=(0.0, 255.0), layout="NHWC"),
    InputSpec(dtype="int8", quant=(1 / 255, -128), layout="NHWC"),  # TFLite INT8: a lookup table
    InputSpec(dtype="uint8", quant=(0.0079, 3), color="BGR"),
    InputSpec(dtype="float16"),  # not in place: preprocess() itself
    InputSpec(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2)),
]


@pytest.mark.parametrize("spec", SPECS)
def test_preprocessor_equals_preprocess_as_frame_sizes_change(spec):
    from edgekit.runtimes.preprocess import Preprocessor

    rng = np.random.default_rng(0)
    pre = Preprocessor(spec, (320, 256))
    for shape in [(200, 400), (480, 640), (256, 320), (200, 400), (1000, 90), (200, 400)]:
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        for rgb in (False, True):
            tensor, info = pre(image, rgb)
            expected, expected_info = preprocess(image, spec, (320, 256), rgb)
            assert info == expected_info
            assert tensor.dtype == expected.dtype
            np.testing.assert_array_equal(tensor, expected)


def test_preprocessor_writes_one_reused_tensor_in_place():
    from edgekit.runtimes.preprocess import Preprocessor

    pre = Preprocessor(InputSpec(), (64, 64))
    first, _ = pre(np.full((32, 64, 3), 10, np.uint8))
    kept = first.copy()
    second, _ = pre(np.full((32, 64, 3), 200, np.uint8))
    assert second is first  # the same buffer: no allocation per frame
    assert not np.array_equal(first, kept)  # which is why the Detector consumes it before the next frame
    np.testing.assert_array_equal(second, preprocess(np.full((32, 64, 3), 200, np.uint8), InputSpec(), (64, 64))[0])
    fresh = Preprocessor(SPECS[-1], (64, 64))
    a, _ = fresh(np.zeros((64, 64, 3), np.uint8))
    b, _ = fresh(np.zeros((64, 64, 3), np.uint8))
    assert a is not b  # inputs with mean/std are made fresh every call
