"""MATLAB-exact image operations used by the authors' SRCNN/FSRCNN code (demo_SR.m, generate_train.m).

Everything is vectorised NumPy. Each function's docstring names the MATLAB behaviour it reproduces;
the exactness matters because the papers' PSNR tables were computed with these MATLAB functions.
"""
import functools

import numpy as np

# MATLAB rgb2ycbcr.m: ycbcr = origT * rgb + origOffset for rgb in [0,1], ycbcr in [0,255].
_ORIG_T = np.array([[65.481, 128.553, 24.966],
                    [-37.797, -74.203, 112.0],
                    [112.0, -93.786, -18.214]])
_ORIG_OFFSET = np.array([16.0, 128.0, 128.0])


def round_half_away(x):
    """MATLAB round(): halves go away from zero (NumPy's np.round goes to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _to_class_uint8(x):
    """MATLAB uint8(x) of a double: round half away from zero, saturate to 0..255 (NaN -> 0)."""
    return np.clip(np.nan_to_num(round_half_away(x)), 0, 255).astype(np.uint8)


def cubic(x):
    """MATLAB imresize.m cubic(): Keys kernel with a = -0.5, support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def contributions(in_length, out_length, scale, antialiasing=True, kill_zero_columns=True):
    """MATLAB imresize.m contributions() for the bicubic kernel (width 4).

    Returns (weights, indices), both out_length x P. Indices are 0-based (MATLAB's minus one),
    already folded into range with MATLAB's symmetric rule aux = [1:in, in:-1:1], so index -1 reads
    pixel 0 and index `in` reads pixel in-1 (edge pixel repeated, like padarray 'symmetric').
    On downscaling with antialiasing the kernel is stretched: h(x) = scale*cubic(scale*x) and the
    width becomes 4/scale, so P = ceil(4/scale) + 2 (14 at scale 1/3). Rows are normalised to sum
    to 1, then, as MATLAB does, columns that are zero in every row are removed.
    """
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)       # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)                     # matching input coordinate (1-based)
    left = np.floor(u - kernel_width / 2)
    p = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(p)[None, :]           # 1-based, may fall outside 1..in
    d = u[:, None] - indices
    weights = scale * cubic(scale * d) if stretch else cubic(d)
    weights = weights / weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    if kill_zero_columns:
        keep = np.any(weights != 0, axis=0)
        weights, indices = weights[:, keep], indices[:, keep]
    return weights, indices


@functools.lru_cache(maxsize=256)
def _resize_matrix(in_length, out_length, scale, antialiasing):
    """Dense out x in matrix equivalent to MATLAB's (weights, indices) pair for one dimension."""
    weights, indices = contributions(in_length, out_length, scale, antialiasing)
    m = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    np.add.at(m, (rows, indices.ravel()), weights.ravel())    # mirrored taps add up on the edge pixel
    m.setflags(write=False)
    return m


def imresize(img, scale=None, output_shape=None, method='bicubic', antialiasing=True):
    """MATLAB imresize(img, scale, 'bicubic') or imresize(img, [rows cols], 'bicubic').

    - Output size ceil(scale*in) for a scalar scale; the scale itself (not out/in) drives the
      kernel, as in MATLAB. With output_shape, scale = out/in per dimension.
    - Bicubic kernel a = -0.5; antialiasing on downscale (see contributions()); symmetric borders.
    - Dimensions are resized one at a time, the one with the smallest scale first (MATLAB's
      dimensionOrder: [~, order] = sort(scale); ties keep rows first).
    - uint8 input: MATLAB's imresizemex returns the input class after each dimension, so the result
      is rounded (half away from zero) and saturated to uint8 after each pass. Output is uint8.
    - Float input: computed and returned in float64, not clipped (MATLAB does not clip doubles).
    Works on HxW and HxWxC arrays.
    """
    if method != 'bicubic':
        raise ValueError("imresize: only method='bicubic' is implemented, got %r" % (method,))
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError("imresize: expected an HxW or HxWxC array, got shape %s" % (img.shape,))
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale and output_shape")
    in_shape = img.shape[:2]
    if scale is not None:
        scales = (float(scale), float(scale))
        out_shape = tuple(int(np.ceil(s * n)) for s, n in zip(scales, in_shape))
    else:
        out_shape = tuple(int(n) for n in output_shape[:2])
        scales = tuple(o / n for o, n in zip(out_shape, in_shape))
    if min(out_shape) < 1 or min(scales) <= 0:
        raise ValueError("imresize: output size %s is empty" % (out_shape,))
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise ValueError("imresize: expected uint8 or float input, got %s" % img.dtype)
    out = img
    for dim in np.argsort(scales, kind='stable'):
        m = _resize_matrix(in_shape[dim], out_shape[dim], scales[dim], bool(antialiasing))
        # Apply the 1-D operator along `dim`: a matrix product over that axis.
        out = np.moveaxis(np.tensordot(m, out.astype(np.float64), axes=([1], [dim])), 0, dim)
        if is_uint8:
            out = _to_class_uint8(out)
    return out


def rgb2ycbcr(img):
    """MATLAB rgb2ycbcr (ITU-R BT.601, 'studio swing').

    uint8 RGB in -> uint8 YCbCr out: Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 with R,G,B in
    0..255, computed in double (imlincomb, terms in order, offset last) and rounded half away from
    zero; Y lies in 16..235, Cb/Cr in 16..240. Float RGB in [0,1] -> float64 YCbCr in [0,1]:
    Y = 16/255 + (65.481 R + 128.553 G + 24.966 B)/255, unrounded and unclipped.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("rgb2ycbcr: expected an HxWx3 RGB image, got shape %s" % (img.shape,))
    t = _ORIG_T / 255.0
    if img.dtype == np.uint8:
        offset = _ORIG_OFFSET
    elif np.issubdtype(img.dtype, np.floating):
        offset = _ORIG_OFFSET / 255.0
    else:
        raise ValueError("rgb2ycbcr: expected uint8 or float input, got %s" % img.dtype)
    x = img.astype(np.float64)
    out = np.stack([t[p, 0] * x[..., 0] + t[p, 1] * x[..., 1] + t[p, 2] * x[..., 2] + offset[p]
                    for p in range(3)], axis=-1)
    return _to_class_uint8(out) if img.dtype == np.uint8 else out


def ycbcr2rgb(img):
    """MATLAB ycbcr2rgb, the inverse of rgb2ycbcr with the same dtype conventions.

    rgb = 255*inv(T)*ycbcr - offset' (uint8: ycbcr in 0..255 and offset = 255*inv(T)*[16;128;128],
    result rounded half away from zero and saturated to uint8; float: ycbcr in [0,1],
    offset = inv(T)*[16;128;128], result float64 clipped to [0,1] as MATLAB does for floats).
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("ycbcr2rgb: expected an HxWx3 YCbCr image, got shape %s" % (img.shape,))
    tinv = np.linalg.inv(_ORIG_T)
    t = 255.0 * tinv
    if img.dtype == np.uint8:
        offset = 255.0 * tinv @ _ORIG_OFFSET
    elif np.issubdtype(img.dtype, np.floating):
        offset = tinv @ _ORIG_OFFSET
    else:
        raise ValueError("ycbcr2rgb: expected uint8 or float input, got %s" % img.dtype)
    x = img.astype(np.float64)
    out = np.stack([t[p, 0] * x[..., 0] + t[p, 1] * x[..., 1] + t[p, 2] * x[..., 2] - offset[p]
                    for p in range(3)], axis=-1)
    return _to_class_uint8(out) if img.dtype == np.uint8 else np.clip(out, 0.0, 1.0)


def rgb2y(img):
    """Y channel as the authors take it: rgb2ycbcr(img)(:,:,1); an HxW (or HxWx1) grayscale image
    is its own Y and is returned unchanged (demo_SR.m only converts when size(im,3) > 1)."""
    img = np.asarray(img)
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 1:
        return img[..., 0]
    return rgb2ycbcr(img)[..., 0]


def modcrop(img, scale):
    """The authors' modcrop.m: crop rows/cols so both are multiples of scale
    (imgs(1:sz(1)-mod(sz(1),scale), 1:sz(2)-mod(sz(2),scale), :))."""
    img = np.asarray(img)
    scale = int(scale)
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w, ...]


def shave(img, border):
    """The authors' shave.m: I(1+b:end-b, 1+b:end-b, :) with b = border (int or (rows, cols))."""
    img = np.asarray(img)
    by, bx = (border, border) if np.isscalar(border) else border
    by, bx = int(by), int(bx)
    return img[by:img.shape[0] - by, bx:img.shape[1] - bx, ...]


def im2double(img):
    """MATLAB im2double: uint8 -> float64 / 255 (uint16 -> / 65535); floats -> float64 unchanged."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 65535.0
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64)
    raise ValueError("im2double: unsupported dtype %s" % img.dtype)


def to_uint8(x):
    """MATLAB uint8(x*255) for a float image in [0,1]: round half away from zero, saturate 0..255."""
    return _to_class_uint8(np.asarray(x, dtype=np.float64) * 255.0)
