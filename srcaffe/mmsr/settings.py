"""MMSR's defaults (the standard library alone: tools/mmsr.py --help shows them)."""
VSP_THRESHOLD = 100.0        # on the 0-255 scale, Y (see srcaffe.mmsr.texture)
DEFAULT_FRAGMENT = 24        # LR pixels
DEFAULT_OVERLAP = 4          # LR pixels
INTENSITY = 255.0            # [0,1] pipeline values -> the 0-255 scale of the thresholds
