"""MATLAB behaviours of srcaffe.matlab, each checkable by hand."""
import math

import numpy as np
import pytest

from srcaffe import matlab


def _literal_imresize_1d(signal, scale):
    """A literal, loop-by-loop transcription of MATLAB's contributions() + imresizemex for one
    dimension (no vectorisation, no weight matrix): the reference for the fast code."""
    n = len(signal)
    out_n = int(math.ceil(n * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    out = []
    for x in range(1, out_n + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps, total = [], 0.0
        for k in range(int(math.ceil(width)) + 2):
            j = left + k
            d = u - j
            w = scale * matlab.cubic(scale * d) if scale < 1 else matlab.cubic(d)
            j0 = (j - 1) % (2 * n)                       # symmetric: [1:n, n:-1:1]
            j0 = j0 if j0 < n else 2 * n - 1 - j0
            taps.append((j0, float(w)))
            total += float(w)
        out.append(sum(w / total * signal[j0] for j0, w in taps))
    return np.array(out)


@pytest.mark.parametrize("scale", [1 / 3, 1 / 2, 1 / 4, 0.7, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    img = np.full((23, 17, 3), 0.3)
    out = matlab.imresize(img, scale)
    np.testing.assert_allclose(out, 0.3, atol=1e-12)
    u8 = matlab.imresize(np.full((23, 17), 77, np.uint8), scale)
    assert u8.dtype == np.uint8 and np.all(u8 == 77)


@pytest.mark.parametrize("shape,scale,expected", [
    ((10, 11), 1 / 3, (4, 4)),       # ceil(10/3) = 4, ceil(11/3) = 4
    ((255, 255), 1 / 3, (85, 85)),   # exact division stays exact (no spurious +1)
    ((7, 9), 0.5, (4, 5)),
    ((10, 11), 3, (30, 33)),
    ((5, 6), 2.5, (13, 15)),
])
def test_output_size_is_ceil(shape, scale, expected):
    assert matlab.imresize(np.zeros(shape), scale).shape == expected
    assert matlab.imresize(np.zeros(shape + (3,)), scale).shape == expected + (3,)


def test_output_shape_argument():
    out = matlab.imresize(np.zeros((10, 12), np.uint8), output_shape=(5, 24))
    assert out.shape == (5, 24) and out.dtype == np.uint8


def test_antialias_kernel_at_one_third():
    # kernel width 4/scale = 12, so P = ceil(12) + 2 = 14 candidate positions per output pixel
    w, idx = matlab.contributions(30, 10, 1 / 3, kill_zero_columns=False)
    assert w.shape == idx.shape == (10, 14)
    # h(d) = cubic(d/3)/3 is non-zero for |d| < 6 only, except d = +-3 where cubic(1) = 0:
    # 11 positions wide, 9 non-zero taps per output pixel.
    nz = np.nonzero(w[3])[0]
    assert nz[-1] - nz[0] + 1 == 11 and len(nz) == 9
    # Without antialiasing a plain 4-tap kernel is used.
    w2, _ = matlab.contributions(30, 10, 1 / 3, antialiasing=False, kill_zero_columns=False)
    assert w2.shape == (10, 6)


@pytest.mark.parametrize("n_in,scale", [(30, 1 / 3), (17, 1 / 2), (9, 0.7), (10, 2), (7, 3), (5, 4)])
def test_weights_sum_to_one(n_in, scale):
    w, _ = matlab.contributions(n_in, int(math.ceil(n_in * scale)), scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-14)


def test_symmetric_border_indices():
    # Downscale 30 -> 10 by 1/3: output 1 maps to u = 2, left = floor(2 - 6) = -4, so 1-based
    # positions -4..9, i.e. 0-based -5..8; MATLAB folds them with aux = [1:30, 30:-1:1].
    _, idx = matlab.contributions(30, 10, 1 / 3, kill_zero_columns=False)
    assert idx[0].tolist() == [4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert idx[-1].tolist() == [22, 23, 24, 25, 26, 27, 28, 29, 29, 28, 27, 26, 25, 24]
    # Upscale 10 -> 20 by 2: u = 0.75, left = -2: 1-based -2..3 -> 0-based [2, 1, 0, 0, 1, 2].
    _, idx = matlab.contributions(10, 20, 2, kill_zero_columns=False)
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2]
    assert idx[-1].tolist() == [7, 8, 9, 9, 8, 7]


@pytest.mark.parametrize("scale", [1 / 3, 1 / 2, 1 / 4, 2, 3, 4])
def test_matches_literal_matlab_transcription(scale):
    rng = np.random.default_rng(0)
    img = rng.random((13, 11))
    expected = np.array([_literal_imresize_1d(col, scale) for col in img.T]).T
    expected = np.array([_literal_imresize_1d(row, scale) for row in expected])
    np.testing.assert_allclose(matlab.imresize(img, scale), expected, atol=1e-12)


def test_upscale_reproduces_a_ramp_with_matlab_geometry():
    # Keys' cubic reproduces linear signals: away from the borders, output pixel x (1-based) holds
    # the input value at u = x/scale + 0.5*(1 - 1/scale), i.e. 0-based position u - 1.
    ramp = np.tile(np.arange(20, dtype=np.float64), (4, 1))
    out = matlab.imresize(ramp, 3)[:, 9:-9]
    x = np.arange(1, 61)[9:-9]
    np.testing.assert_allclose(out, np.tile(x / 3 + 0.5 * (1 - 1 / 3) - 1, (12, 1)), atol=1e-12)


def test_uint8_is_rounded_per_pass_and_close_to_float():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    out = matlab.imresize(img, 1 / 3)
    assert out.dtype == np.uint8 and out.shape == (14, 17, 3)
    ref = matlab.to_uint8(matlab.imresize(img / 255.0, 1 / 3))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    # float input: float64 output, not clipped (bicubic overshoots at a step edge)
    step = np.zeros((8, 8)); step[:, 4:] = 1
    up = matlab.imresize(step.astype(np.float32), 2)
    assert up.dtype == np.float64 and up.max() > 1 and up.min() < 0


def test_only_bicubic():
    with pytest.raises(ValueError):
        matlab.imresize(np.zeros((4, 4)), 2, method="bilinear")


def test_round_half_away_from_zero():
    assert matlab.round_half_away([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999]).tolist() == [1, 2, 3, -1, -3, 2]
    assert matlab.to_uint8(np.array([-0.1, 0.0, 0.5 / 255 + 1e-12, 1.0, 1.2, np.nan])).tolist() == [0, 0, 1, 255, 255, 0]


def test_rgb2ycbcr_pure_colours():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    ycc = matlab.rgb2ycbcr(px)
    assert ycc.dtype == np.uint8
    assert ycc[0, :, 0].tolist() == [81, 145, 41, 235, 16]
    assert ycc[0, 3, 1:].tolist() == [128, 128] and ycc[0, 4, 1:].tolist() == [128, 128]
    assert ycc[0, 2, 1] == 240 and ycc[0, 0, 2] == 240      # Cb of blue, Cr of red: 128 + 112
    f = matlab.rgb2ycbcr(px / 255.0)
    assert f.dtype == np.float64
    np.testing.assert_allclose(f[0, :, 0] * 255, [81.481, 144.553, 40.966, 235, 16], atol=1e-9)
    assert matlab.rgb2y(px).tolist() == [[81, 145, 41, 235, 16]]


def test_ycbcr_round_trip():
    rng = np.random.default_rng(3)
    rgb = rng.random((6, 7, 3))
    np.testing.assert_allclose(matlab.ycbcr2rgb(matlab.rgb2ycbcr(rgb)), rgb, atol=1e-12)
    u8 = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    back = matlab.ycbcr2rgb(matlab.rgb2ycbcr(u8))
    assert back.dtype == np.uint8 and np.abs(back.astype(int) - u8).max() <= 3


def test_rgb2y_of_grayscale_is_itself():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert matlab.rgb2y(gray) is gray


def test_modcrop_shave_im2double():
    img = np.arange(11 * 13 * 3).reshape(11, 13, 3)
    assert matlab.modcrop(img, 3).shape == (9, 12, 3)
    assert matlab.modcrop(img[..., 0], 4).shape == (8, 12)
    np.testing.assert_array_equal(matlab.modcrop(img, 3), img[:9, :12])
    s = matlab.shave(img, 2)
    assert s.shape == (7, 9, 3)
    np.testing.assert_array_equal(s, img[2:9, 2:11])
    d = matlab.im2double(np.array([0, 51, 255], np.uint8))
    assert d.dtype == np.float64 and d.tolist() == [0.0, 0.2, 1.0]
