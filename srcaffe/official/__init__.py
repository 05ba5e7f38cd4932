"""The authors' released SRCNN / FSRCNN models (MATLAB .mat) run through Caffe, with their border logic.

    m = load_official("official-fsrcnn", 3)           # Caffe net + the released x3 weights
    evaluate(m.upscaler, list_images("Set5"), 3, "official-fsrcnn")   # -> 33.16 dB, as the paper

The released files (Dong et al.'s test packages SRCNN_v1 and FSRCNN_test) are converted to Caffe
blobs (`caffe_params`), loaded into deploy nets written with net_spec (`net_text`; committed under
prototxt/official/ by tools/make_nets.py via `generated_files()`), and evaluated with the
toolkit's demo_SR.m pipeline (srcaffe.evaluation). tools/import_official.py saves the converted
weights as models/official/<name>_x<scale>.caffemodel.

Borders: padding='replicate' (default) reproduces the authors' MATLAB exactly.
  * FSRCNN.m / SRCNN.m run every 'same' filter as imfilter(x, w, 'same', 'replicate'):
    here a ReplicatePad Python layer (srcaffe/caffe_layers.py) of (k-1)/2 pixels sits before
    every spatial Convolution, whose own pad is 0.
  * deconv.m replicate-pads its input by 1 pixel, scatters every input pixel's 9x9 filter with
    stride s, and keeps the s*h x s*w window starting at (f+1)/2 + s (1-based): here
    ReplicatePad(1) -> Deconvolution(kernel 9, stride s, pad 0) -> Crop2D(begin 4+s, end 5).
    Caffe's Deconvolution scatters the kernel as stored (no flip), as deconv.m does.
padding='zero' is what a plain Caffe net does: every Convolution zero-pads (k-1)/2 (Caffe's own
`pad`); the Deconvolution is Caffe's pad 4, completed to s*h outputs by cropping a pad-0
Deconvolution 4 pixels from the top/left (= pad 4 with an output padding of s-1, which Caffe lacks).
Zero borders cost FSRCNN x3 about 0.4 dB on Set5 (32.78 vs 33.16): Set5's images are small, so
the dark frame that zeros put around the LR image reaches many evaluated pixels.

shave_x3: demo_FSRCNN.m compares FSRCNN's x3 output with shave_x3, I(b:end-b-1) instead of
I(b+1:end-b), i.e. one pixel up-left of the ground truth's window (deconv.m centres LR pixel k on
HR pixel 3k-2 where MATLAB's bicubic grid puts it at 3k-1). The upscaler of an FSRCNN model at x3
therefore returns its output moved one pixel down-right (the first row/column repeated), so that
evaluation's standard shave(scale) compares exactly the pixels the authors compared
(authors_shave=False turns that off). SRCNN's demo_SR.m uses plain shave at every scale.

Layout of the .mat files (MATLAB is column-major: reshape(w(c,:,o), k, k) gives filter[y, x] =
w[c, x*k + y, o]):
  FSRCNN: cells weights_conv{l} (in x k*k x out), biases_conv{l}, prelu_conv{l} (one slope; the
          last cell empty). The last cell (1 x 81 x d) holds channel j's 9x9 deconv filter in
          w(1, :, j); FSRCNN.m sums deconv(conv_data(:,:,j), reshape(w(1,:,j), 9, 9), s) over j.
  SRCNN:  weights_conv1 (k1^2 x n1), weights_conv2 (n1 x k2^2 x n2), weights_conv3 (n2 x k3^2),
          biases_conv1..3.
tests/official_reference.py holds literal NumPy transcriptions of FSRCNN.m, SRCNN.m and deconv.m
reading those arrays directly; the tests check the Caffe nets against them.

Modules: registry (names, files, checksums), mat (.mat -> Caffe blobs), deploy (the nets),
model (import and run), fetch (the released files from their public copies).
"""
from .registry import (FETCH_DIR, MODELS, OFFICIAL_DIR, PADDINGS, PAPERS, caffemodel_path, check_name,  # noqa: F401
                       is_fsrcnn, mat_path, weights_dir)

# The rest needs NumPy and Caffe: imported on first use, so that the names above (what a tool's
# --help lists) come with the standard library alone.
_LAZY = {"caffe_params": "mat", "load_mat": "mat", "read_mat": "mat",
         "deploy_path": "deploy", "generated_files": "deploy", "net_text": "deploy",
         "OfficialModel": "model", "evaluate_official": "model", "import_model": "model",
         "load_official": "model", "shift_down_right": "model", "fetch": "fetch"}

from ..lazy import lazy_package  # noqa: E402

lazy_package(__name__, _LAZY)
