"""Environment variables the toolkit's Caffe reads, checked before Caffe starts: the patched
Caffe aborts the whole process (SIGABRT) on a bad value.

    CAFFE_CONV_BATCH_MB   MB of buffers per batched convolution chunk (default 16; 0: stock
                          Caffe's per-image convolution): a non-negative number
"""
import math
import re

from . import paths
from .errors import UserError

_NUMBER = re.compile(r"\+?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def check(environ=None):
    """One line naming the variable unless every knob holds a value Caffe takes."""
    environ = paths.env_values(["CAFFE_CONV_BATCH_MB"]) if environ is None else environ
    value = environ.get("CAFFE_CONV_BATCH_MB")
    if value:
        if not (_NUMBER.fullmatch(value) and math.isfinite(float(value))):
            raise UserError("CAFFE_CONV_BATCH_MB=%s: must be a non-negative number of MB (0: per-image "
                            "convolution; unset: the default 16)" % value)
