"""Reading and writing images as the MATLAB code sees them (imread: uint8 RGB or grayscale)."""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import files
from .errors import UserError
from .paths import max_image_pixels

# Pillow's own limit raises DecompressionBombError (a traceback) inside Image.open; the size is
# checked here instead, from the header, before anything is decoded (check_pixels).
Image.MAX_IMAGE_PIXELS = None


def check_pixels(path, size):
    """One line naming the image and the limit unless width x height is within it."""
    w, h = size
    limit = max_image_pixels()
    if w * h > limit:
        raise UserError("%s: %dx%d pixels (%.0f MP) is over the %.0f MP limit for images; set "
                        "SRCAFFE_MAX_IMAGE_PIXELS=%d to read it (the upscaled output needs about scale^2 times "
                        "its memory)" % (path, w, h, w * h / 1e6, limit / 1e6, w * h))


def load_image(path):
    """Read an image file as uint8: HxWx3 RGB or HxW grayscale (what MATLAB imread gives for the
    8-bit BMP/PNG test sets). RGBA drops alpha, paletted images are expanded, 16-bit images are
    scaled to 8 bits (round(v/257), like im2uint8). Anything unreadable raises UserError naming it."""
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            check_pixels(path, im.size)   # from the header: before the pixels are decoded
            im.load()
            mode = im.mode
            if mode == 'P':
                im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
                mode = im.mode
            if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
                arr = np.asarray(im).astype(np.float64)
                if arr.max(initial=0) > 255 or mode.startswith('I;16'):
                    arr = np.floor(arr / 257.0 + 0.5)    # im2uint8 of 16-bit data
                return np.clip(arr, 0, 255).astype(np.uint8)
            if mode in ('1', 'L', 'LA', 'F'):
                im = im.convert('L')
            elif mode != 'RGB':
                im = im.convert('RGB')                   # RGBA, CMYK, YCbCr, LAB...: alpha dropped
            return np.array(im, dtype=np.uint8)
    except FileNotFoundError:
        raise UserError("%s: not a readable image (no such file)" % path) from None
    except IsADirectoryError:
        raise UserError("%s: not a readable image (it is a directory)" % path) from None
    except UnidentifiedImageError:
        raise UserError("%s: not a readable image (unknown or corrupt image format)" % path) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError("%s: not a readable image (%s)" % (path, exc)) from None


def save_image(path, img, overwrite=False):
    """Write a uint8 HxW or HxWx3 array (format from the extension: .png, .bmp, ...).

    Refuses to replace an existing file unless overwrite=True (UserError naming the file)."""
    path = os.fspath(path)
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError("save_image expects uint8 data, got %s (use matlab.to_uint8)" % img.dtype)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    with files.writing(path, overwrite) as tmp:
        try:
            Image.fromarray(img).save(tmp, format=Image.registered_extensions().get(
                os.path.splitext(path)[1].lower()))
        except (ValueError, KeyError) as exc:
            raise UserError("%s: cannot write image (%s)" % (path, exc)) from None


def load_alpha(path):
    """The alpha channel of an image file (uint8 HxW), or None when it has none."""
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and "transparency" in im.info):
                return None
            return np.array(im.convert("RGBA"), dtype=np.uint8)[..., 3]
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError("%s: not a readable image (%s)" % (path, exc)) from None
