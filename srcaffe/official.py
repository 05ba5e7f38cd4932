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
`matlab_fsrcnn` / `matlab_srcnn` / `matlab_deconv` are literal NumPy transcriptions of FSRCNN.m,
SRCNN.m and deconv.m reading those arrays directly; the tests check the Caffe nets against them.
"""
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile

os.environ.setdefault("GLOG_minloglevel", "2")   # before caffe is imported: no glog chatter

import numpy as np

from . import ROOT, datasets, matlab, nets, papers
from .errors import UserError

OFFICIAL_DIR = os.path.join(ROOT, "models", "official")          # imported caffemodels
SUMS_FILE = os.path.join(OFFICIAL_DIR, "SHA256SUMS")             # checksums of the released .mat
FETCH_DIR = os.path.join(ROOT, "models", "official-src")         # where `fetch` puts the .mat files
SHARED_DIR = os.path.join(os.path.dirname(ROOT), "shared", "weights", "official")
PROTOTXT_DIR = os.path.join(ROOT, "prototxt", "official")
PADDINGS = ("replicate", "zero")
LAYER_MODULE = "srcaffe.caffe_layers"

# name -> architecture (srcaffe.nets.MODELS), folder of the .mat files, scales, description.
MODELS = {
    "official-fsrcnn": dict(arch="fsrcnn", folder="FSRCNN", scales=(2, 3, 4),
                            description="FSRCNN(56,12,4), 91-image + General-100 (ECCV 2016)"),
    "official-fsrcnn-s": dict(arch="fsrcnn-s", folder="FSRCNN-s", scales=(2, 3, 4),
                              description="FSRCNN-s = FSRCNN(32,5,1), 91-image + General-100 (ECCV 2016)"),
    "official-srcnn-915": dict(arch="srcnn", folder="SRCNN/9-1-5-91images", scales=(2, 3, 4),
                               description="SRCNN 9-1-5, 91 images (ECCV 2014)"),
    "official-srcnn-915-imagenet": dict(arch="srcnn", folder="SRCNN/9-1-5-ImageNet", scales=(3,),
                                        description="SRCNN 9-1-5, ImageNet (TPAMI 2015)"),
    "official-srcnn-935": dict(arch="srcnn-935", folder="SRCNN/9-3-5-ImageNet", scales=(3,),
                               description="SRCNN 9-3-5, ImageNet (TPAMI 2015)"),
    "official-srcnn-955": dict(arch="srcnn-955", folder="SRCNN/9-5-5-ImageNet", scales=(2, 3, 4),
                               description="SRCNN 9-5-5, ImageNet (TPAMI 2015)"),
}

# The papers' mean PSNR (dB) for these very models: {name: {(dataset, scale): psnr}} (srcaffe/papers.py).
# The other released SRCNN variants have no table entry in the papers we could read.
PAPERS = {name: papers.PUBLISHED[name][0][1] for name in ("official-fsrcnn", "official-fsrcnn-s", "official-srcnn-955")}

# Public copies of the released files, tried in order by `fetch`; every file is checked against
# models/official/SHA256SUMS, so a changed or wrong source fails loudly instead of being used.
#   ("raw", base URL, {our folder: their folder}): base + their folder + "/x<s>.mat"
#   ("zip", archive URL, {our folder: their folder}): a member ending in their folder/x<s>.mat
_YABORN = "https://raw.githubusercontent.com/yaBorn/Super-resolution/74efc0394f0a07b615d6a25be412cf4ffc72169a/"
_PIYUSH = "https://raw.githubusercontent.com/Piyush3dB/SR-convnet/eaa95e3fa5c27de473b0ce9be62a586dcf2bb422/"
_SRCNN_FOLDERS = {"SRCNN/9-1-5-91images": "9-1-5(91 images)", "SRCNN/9-1-5-ImageNet": "9-1-5(ImageNet)",
                  "SRCNN/9-3-5-ImageNet": "9-3-5(ImageNet)", "SRCNN/9-5-5-ImageNet": "9-5-5(ImageNet)"}
SOURCES = [
    # the authors' SRCNN test package from the project page (model/<variant>/x<s>.mat inside)
    ("zip", "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_v1.zip",
     {k: "model/" + v for k, v in _SRCNN_FOLDERS.items()}),
    # FSRCNN_test as committed in yaBorn/Super-resolution (byte-identical to the release)
    ("raw", _YABORN + "Algorithm/FSRCNN/FSRCNN_test/model/",
     {"FSRCNN": "FSRCNN", "FSRCNN-s": "FSRCNN-s"}),
    # SRCNN_v1's models as committed in Piyush3dB/SR-convnet's first commit, and in yaBorn
    ("raw", _PIYUSH + "model/", dict(_SRCNN_FOLDERS)),
    ("raw", _YABORN + "Algorithm/SRCNN/model/", dict(_SRCNN_FOLDERS)),
]


# ---- registry and files -----------------------------------------------------------------------

def check_name(name, scale=None):
    """The registry entry of a model name (UserError for unknown names or scales)."""
    if name not in MODELS:
        raise UserError("unknown official model %r (known: %s)" % (name, ", ".join(MODELS)))
    entry = MODELS[name]
    if scale is not None and int(scale) not in entry["scales"]:
        raise UserError("%s: the authors released no x%s model (scales: %s)"
                        % (name, scale, "/".join("x%d" % s for s in entry["scales"])))
    return entry


def is_fsrcnn(name):
    return isinstance(nets.architecture(check_name(name)["arch"]), nets.FSRCNN)


def mat_relpath(name, scale):
    """'FSRCNN/x3.mat': the file's path inside the weights folder (and in SHA256SUMS)."""
    return "%s/x%d.mat" % (check_name(name, scale)["folder"], int(scale))


def load_sums(path=SUMS_FILE):
    """{relative path: sha256} of the released files, e.g. 'FSRCNN/x3.mat'."""
    return datasets.read_sha256sums(path)


def weights_dir():
    """Folder holding the released .mat files: $SRCAFFE_OFFICIAL_WEIGHTS, else
    <repo>/../shared/weights/official, else <repo>/models/official-src (after a fetch); None if
    none of them exists."""
    env = os.environ.get("SRCAFFE_OFFICIAL_WEIGHTS")
    if env:
        if not os.path.isdir(env):
            raise UserError("SRCAFFE_OFFICIAL_WEIGHTS=%s: no such folder" % env)
        return os.path.abspath(env)
    for folder in (SHARED_DIR, FETCH_DIR):
        if os.path.isdir(folder):
            return folder
    return None


def mat_path(name, scale, folder=None):
    """Path of a released .mat, verified against models/official/SHA256SUMS (UserError otherwise)."""
    rel = mat_relpath(name, scale)
    folder = folder or weights_dir()
    if folder is None:
        raise UserError("the authors' .mat files are not here (looked for $SRCAFFE_OFFICIAL_WEIGHTS, %s, %s); "
                        "run: python tools/import_official.py --fetch" % (SHARED_DIR, FETCH_DIR))
    path = os.path.join(folder, rel)
    if not os.path.isfile(path):
        raise UserError("%s: missing; run: python tools/import_official.py --fetch" % path)
    expected = load_sums().get(rel)
    if expected is None:
        raise UserError("%s: no checksum for %s" % (SUMS_FILE, rel))
    if datasets.sha256_file(path) != expected:
        raise UserError("%s: checksum mismatch with %s (not the authors' file)" % (path, SUMS_FILE))
    return path


def read_mat(path):
    """The arrays of a released .mat: FSRCNN -> {'weights_conv': [..], 'biases_conv': [..],
    'prelu_conv': [..]}; SRCNN -> {'weights_conv1': .., 'biases_conv1': .., ...} (float64)."""
    import scipy.io

    raw = scipy.io.loadmat(path)
    if "weights_conv" in raw:
        return {k: [np.asarray(c, dtype=np.float64) for c in raw[k].ravel()]
                for k in ("weights_conv", "biases_conv", "prelu_conv")}
    keys = ["%s_conv%d" % (w, i) for w in ("weights", "biases") for i in (1, 2, 3)]
    missing = [k for k in keys if k not in raw]
    if missing:
        raise UserError("%s: not an SRCNN/FSRCNN model file (no %s)" % (path, ", ".join(missing)))
    return {k: np.asarray(raw[k], dtype=np.float64) for k in keys}


def load_mat(name, scale, folder=None):
    return read_mat(mat_path(name, scale, folder))


# ---- .mat -> Caffe blobs ----------------------------------------------------------------------

def _filters(w):
    """MATLAB (in, k*k, out) -> Caffe (out, in, k, k): filter[y, x] = w[c, x*k + y, o]."""
    c, kk, o = w.shape
    k = int(round(np.sqrt(kk)))
    if k * k != kk:
        raise UserError("a filter of %d taps is not square" % kk)
    return w.reshape(c, k, k, o).transpose(3, 0, 2, 1)     # [c, x, y, o] -> [o, c, y, x]


def caffe_params(name, scale, mat):
    """{Caffe layer name: [blobs]} for the deploy nets, from read_mat() arrays.

    Convolution weights are (out, in, k, k); the Deconvolution's are (in, out=1, 9, 9), channel
    j's filter being FSRCNN.m's reshape(w(1,:,j), 9, 9); PReLU slopes are scalars."""
    arch = nets.architecture(check_name(name, scale)["arch"])
    specs = nets.layers(check_name(name)["arch"], scale)
    out = {}
    if isinstance(arch, nets.FSRCNN):
        ws, bs, ps = mat["weights_conv"], mat["biases_conv"], mat["prelu_conv"]
        if len(ws) != len(specs):
            raise UserError("%s x%d: the .mat has %d layers, %s has %d" % (name, scale, len(ws), arch, len(specs)))
        for i, layer in enumerate(specs):
            w = _filters(ws[i])
            out[layer.name] = [w, bs[i].ravel()]
            if i < len(specs) - 1:
                out["prelu" + layer.name[4:]] = [np.asarray(ps[i]).reshape(())]
        # the deconv cell is (1, 81, d): _filters gives (d, 1, 9, 9) = Caffe's (in, out, k, k)
    else:
        k1 = int(round(np.sqrt(mat["weights_conv1"].shape[0])))
        w1 = mat["weights_conv1"].reshape(k1, k1, -1).transpose(2, 1, 0)[:, None]   # [x,y,o] -> [o,1,y,x]
        k3 = int(round(np.sqrt(mat["weights_conv3"].shape[1])))
        w3 = mat["weights_conv3"].reshape(-1, k3, k3).transpose(0, 2, 1)[None]       # [c,x,y] -> [1,c,y,x]
        out["conv1"] = [w1, mat["biases_conv1"].ravel()]
        out["conv2"] = [_filters(mat["weights_conv2"]), mat["biases_conv2"].ravel()]
        out["conv3"] = [w3, mat["biases_conv3"].ravel()]
    from .training import param_shapes
    got = [b.shape for layer in out.values() for b in layer]
    want = [tuple(s) for s in param_shapes(check_name(name)["arch"], scale)]
    if sorted(got) != sorted(want):
        raise UserError("%s x%d: converted blob shapes %s do not match the architecture's %s"
                        % (name, scale, got, want))
    return out


# ---- deploy nets ------------------------------------------------------------------------------

def _pad_layer(L, top, pad):
    return L.Python(top, python_param=dict(module=LAYER_MODULE, layer="ReplicatePad", param_str=str(int(pad))))


def net_text(name, scale, padding="replicate", height=None, width=None):
    """Deploy prototxt of an official model (an Input blob `data`, output blob `conv3` or `crop3`).

    FSRCNN's input is the LR image, SRCNN's the bicubic-upscaled one; the output has
    scale * the input's size (FSRCNN) or the input's size (SRCNN), whatever the input size."""
    from caffe import layers as L, NetSpec

    if padding not in PADDINGS:
        raise UserError("padding must be one of %s, not %r" % ("/".join(PADDINGS), padding))
    entry = check_name(name, scale)
    scale = int(scale)
    fsrcnn = is_fsrcnn(name)
    size = nets.FSRCNN_LR_PATCH if fsrcnn else nets.SRCNN_PATCH
    n = NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[1, 1, height or size, width or size])))
    top = n.data
    specs = nets.layers(entry["arch"], scale)
    for i, layer in enumerate(specs):
        half = (layer.kernel - 1) // 2
        if layer.kind == "conv":
            pad = half if padding == "zero" else 0
            if padding == "replicate" and half:
                top = _pad_layer(L, top, half)
                setattr(n, "pad" + layer.name[4:], top)
            top = L.Convolution(top, convolution_param=dict(num_output=layer.num_output, kernel_size=layer.kernel,
                                                            stride=1, pad=pad))
        else:
            # deconv.m: replicate-pad 1, scatter with stride s, keep s*h from (f+1)/2 + s (1-based)
            if padding == "replicate":
                top = _pad_layer(L, top, 1)
                setattr(n, "pad" + layer.name[4:], top)
                begin, end = half + scale, layer.kernel - half
            else:   # Caffe's pad 4, with the s-1 outputs Caffe's size rule drops kept
                begin, end = half, layer.kernel - half - scale
            top = L.Deconvolution(top, convolution_param=dict(num_output=layer.num_output, kernel_size=layer.kernel,
                                                              stride=scale, pad=0))
            setattr(n, layer.name, top)
            if end < 0:
                raise UserError("scale %d is too large for a %d-tap deconvolution" % (scale, layer.kernel))
            top = L.Python(top, python_param=dict(module=LAYER_MODULE, layer="Crop2D",
                                                  param_str=json.dumps({"begin": begin, "end": end})))
            setattr(n, "crop" + layer.name[4:], top)
            continue
        setattr(n, layer.name, top)
        if i < len(specs) - 1:
            act = L.PReLU(top, prelu_param=dict(channel_shared=True), in_place=True) if fsrcnn \
                else L.ReLU(top, in_place=True)
            setattr(n, ("prelu" if fsrcnn else "relu") + layer.name[4:], act)
    title = "%s_x%d%s" % (name.upper().replace("-", "_"), scale, "_ZEROPAD" if padding == "zero" else "")
    header = ("# %s, the authors' released weights (%s), %s borders.\n"
              "# Generated by srcaffe/official.py (tools/make_nets.py); do not edit.\n"
              % (entry["description"], mat_relpath(name, scale),
                 "replicate (the authors' MATLAB)" if padding == "replicate" else "Caffe's zero"))
    return '%sname: "%s"\n%s' % (header, title, n.to_proto())


def output_blob(name):
    return "crop3" if is_fsrcnn(name) else "conv3"


def deploy_path(name, scale, padding="replicate"):
    return os.path.join(PROTOTXT_DIR, "%s_x%d%s_deploy.prototxt"
                        % (name, int(scale), "_zeropad" if padding == "zero" else ""))


def generated_files():
    """{path: text} of every official-model deploy prototxt (for tools/make_nets.py)."""
    return {deploy_path(name, s, p): net_text(name, s, p)
            for name, entry in MODELS.items() for s in entry["scales"] for p in PADDINGS}


def caffemodel_path(name, scale, out_dir=None):
    return os.path.join(out_dir or OFFICIAL_DIR, "%s_x%d.caffemodel" % (name, int(scale)))


def _make_net(name, scale, padding):
    """A caffe.Net (TEST phase) of the deploy prototxt: the committed file when it is current,
    else the generated text through a temporary file."""
    import caffe

    text = net_text(name, scale, padding)
    path = deploy_path(name, scale, padding)
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return caffe.Net(path, caffe.TEST)
    fd, tmp = tempfile.mkstemp(suffix=".prototxt", prefix="official-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return caffe.Net(tmp, caffe.TEST)
    finally:
        os.remove(tmp)


def set_params(net, params):
    """Copy {layer: [arrays]} into a caffe.Net's blobs (shapes must agree)."""
    for layer, blobs in params.items():
        if layer not in net.params or len(net.params[layer]) != len(blobs):
            raise UserError("the net has no layer %s with %d blob(s)" % (layer, len(blobs)))
        for blob, value in zip(net.params[layer], blobs):
            if tuple(blob.data.shape) != tuple(value.shape):
                raise UserError("layer %s: blob %s, weights %s" % (layer, blob.data.shape, value.shape))
            blob.data[...] = value


def check_caffemodel(path, name, scale):
    """UserError unless the .caffemodel holds exactly this model's blob shapes (Caffe would abort).
    The official nets' learnable layers carry the same names as the toolkit's own (srcaffe.nets)."""
    from .inference import check_weights

    check_weights(path, check_name(name)["arch"], scale)


def import_model(name, scale, out_dir=None, force=False, folder=None):
    """Convert the released .mat to <out_dir>/<name>_x<scale>.caffemodel (net.save); returns the path.
    An existing file is never overwritten without force."""
    dest = caffemodel_path(name, scale, out_dir)
    if os.path.exists(dest) and not force:
        raise UserError("%s: already exists; refusing to overwrite it (use --force)" % dest)
    net = _make_net(name, scale, "replicate")
    set_params(net, caffe_params(name, scale, load_mat(name, scale, folder)))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-", suffix=".caffemodel")
    os.close(fd)
    try:
        net.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


# ---- running ----------------------------------------------------------------------------------

class OfficialModel:
    """A released model in a Caffe net: upscale_y(lr_y) and upscaler(lr_y, scale) for evaluate()."""

    def __init__(self, name, scale, padding="replicate", weights="auto", authors_shave=True, folder=None):
        entry = check_name(name, scale)
        self.name, self.scale, self.padding = name, int(scale), padding
        self.arch = entry["arch"]
        self.fsrcnn = is_fsrcnn(name)
        self.shift = bool(authors_shave) and self.fsrcnn and self.scale == 3
        self.net = _make_net(name, self.scale, padding)
        self.output = output_blob(name)
        shipped = caffemodel_path(name, self.scale)
        if weights == "auto":
            weights = shipped if os.path.isfile(shipped) else "mat"
        if weights == "mat":
            set_params(self.net, caffe_params(name, self.scale, load_mat(name, self.scale, folder)))
            self.weights = mat_relpath(name, self.scale)
        else:
            check_caffemodel(weights, name, self.scale)
            self.net.copy_from(weights)
            self.weights = weights

    def __repr__(self):
        return "OfficialModel(%s x%d, %s padding, weights %s)" % (self.name, self.scale, self.padding, self.weights)

    def forward(self, x):
        """Run the net on one float map (the LR image for FSRCNN, the bicubic one for SRCNN)."""
        x = np.asarray(x, dtype=np.float32)
        self.net.blobs["data"].reshape(1, 1, *x.shape)
        self.net.reshape()
        self.net.blobs["data"].data[0, 0] = x
        self.net.forward()
        return self.net.blobs[self.output].data[0, 0].astype(np.float64)

    def upscale_y(self, lr_y):
        """SR Y (float64, scale times the LR size) as the authors' FSRCNN.m / SRCNN.m compute it."""
        lr_y = np.asarray(lr_y, dtype=np.float64)
        if lr_y.ndim != 2:
            raise UserError("expected a 2-D Y channel, got shape %s" % (lr_y.shape,))
        if self.fsrcnn:
            return self.forward(lr_y)
        return self.forward(matlab.imresize(lr_y, self.scale))    # demo_SR.m: im_b, then SRCNN(im_b)

    def upscaler(self, lr_y, scale):
        """srcaffe.evaluation upscaler. For FSRCNN at x3 the output is moved one pixel down-right
        (edge repeated) so that shave(3) compares what demo_FSRCNN.m's shave_x3 compares."""
        if int(scale) != self.scale:
            raise UserError("%s is the x%d model; asked for x%s" % (self.name, self.scale, scale))
        sr = self.upscale_y(lr_y)
        return shift_down_right(sr) if self.shift else sr


def shift_down_right(img):
    """out[y, x] = img[y-1, x-1], the first row/column repeated: shave(out, b) == shave_x3(img, b)."""
    return np.pad(img, ((1, 0), (1, 0)), mode="edge")[:-1, :-1]


def load_official(name, scale, padding="replicate", weights="auto", authors_shave=True):
    """An OfficialModel: `name` from MODELS, the released x`scale` weights in a Caffe net.

    weights: 'auto' (models/official/<name>_x<scale>.caffemodel if imported, else the verified
    .mat), 'mat', or a .caffemodel path. padding: 'replicate' (the authors' MATLAB) or 'zero'.
    authors_shave: emulate demo_FSRCNN.m's shave_x3 for FSRCNN x3 (see the module docstring)."""
    if padding not in PADDINGS:
        raise UserError("padding must be one of %s, not %r" % ("/".join(PADDINGS), padding))
    return OfficialModel(name, scale, padding=padding, weights=weights, authors_shave=authors_shave)


# ---- NumPy transcriptions of the authors' MATLAB (references for the tests) --------------------

def _imfilter_replicate(x, f):
    """imfilter(x, f, 'same', 'replicate') for an odd square filter: correlation, edge padding."""
    from scipy.ndimage import correlate
    return correlate(x, f, mode="nearest")


def matlab_deconv(x, f, stride):
    """deconv.m: replicate-pad by 1, scatter x(i,j)*filter at 1+(i-1)*stride, crop s*h from
    (f+1)/2 + stride (1-based)."""
    border = 1
    h0, w0 = x.shape
    p = np.pad(x, border, mode="edge")
    h, w = p.shape
    k = f.shape[0]
    out = np.zeros((h * stride + k - 1, w * stride + k - 1))
    for u in range(k):
        for v in range(k):
            out[u:u + (h - 1) * stride + 1:stride, v:v + (w - 1) * stride + 1:stride] += p * f[u, v]
    start = (k + 1) // 2 + stride * border - 1
    return out[start:start + h0 * stride, start:start + w0 * stride]


def matlab_fsrcnn(mat, im_l, scale):
    """FSRCNN.m on read_mat() arrays, in float64."""
    ws, bs, ps = mat["weights_conv"], mat["biases_conv"], mat["prelu_conv"]
    data = np.asarray(im_l, dtype=np.float64)[..., None]
    for l in range(len(ws) - 1):
        c, kk, o = ws[l].shape
        k = int(round(np.sqrt(kk)))
        nxt = np.zeros(data.shape[:2] + (o,))
        for i in range(o):
            for j in range(c):
                nxt[:, :, i] += _imfilter_replicate(data[:, :, j], ws[l][j, :, i].reshape(k, k, order="F"))
            t = nxt[:, :, i] + bs[l].ravel()[i]
            nxt[:, :, i] = np.maximum(t, 0) + float(np.ravel(ps[l])[0]) * np.minimum(t, 0)
        data = nxt
    w = ws[-1]
    h, wd = data.shape[:2]
    out = np.zeros((h * scale, wd * scale))
    for j in range(w.shape[2]):
        out += matlab_deconv(data[:, :, j], w[0, :, j].reshape(9, 9, order="F"), scale)
    return out + bs[-1].ravel()[0]


def matlab_srcnn(mat, im_b):
    """SRCNN.m on read_mat() arrays, in float64 (im_b: the bicubic-upscaled image)."""
    im_b = np.asarray(im_b, dtype=np.float64)
    w1, w2, w3 = mat["weights_conv1"], mat["weights_conv2"], mat["weights_conv3"]
    k1, k2, k3 = (int(round(np.sqrt(n))) for n in (w1.shape[0], w2.shape[1], w3.shape[1]))
    c1 = np.stack([np.maximum(_imfilter_replicate(im_b, w1[:, i].reshape(k1, k1, order="F"))
                              + mat["biases_conv1"].ravel()[i], 0) for i in range(w1.shape[1])], axis=-1)
    c2 = np.zeros(im_b.shape + (w2.shape[2],))
    for i in range(w2.shape[2]):
        for j in range(w2.shape[0]):
            c2[:, :, i] += _imfilter_replicate(c1[:, :, j], w2[j, :, i].reshape(k2, k2, order="F"))
        c2[:, :, i] = np.maximum(c2[:, :, i] + mat["biases_conv2"].ravel()[i], 0)
    out = np.zeros(im_b.shape)
    for i in range(w3.shape[0]):
        out += _imfilter_replicate(c2[:, :, i], w3[i, :].reshape(k3, k3, order="F"))
    return out + mat["biases_conv3"].ravel()[0]


# ---- fetching the originals (network: only when asked) ----------------------------------------

def _download(url, dest, timeout=120):
    req = urllib.request.Request(url, headers={"User-Agent": "srcaffe-official"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out)


def fetch(names=None, dest=None, force=False, log=None):
    """Download the released .mat files of `names` (default: all) into dest (default
    <repo>/models/official-src), each checked against models/official/SHA256SUMS before it is
    put in place. Intact files are kept; a differing one is replaced only with force.
    Returns the number of files written."""
    log = log or (lambda msg: None)
    dest = os.path.abspath(dest or FETCH_DIR)
    sums = load_sums()
    todo = {}
    for name in names or list(MODELS):
        for s in check_name(name)["scales"]:
            rel = mat_relpath(name, s)
            path = os.path.join(dest, rel)
            if os.path.isfile(path) and datasets.sha256_file(path) == sums[rel]:
                continue
            if os.path.exists(path) and not force:
                raise UserError("%s: exists but differs from %s; refusing to overwrite it (use --force)"
                                % (path, SUMS_FILE))
            todo[rel] = sums[rel]
    if not todo:
        return 0
    written, failed = 0, {rel: "no source has it" for rel in todo}
    with tempfile.TemporaryDirectory(prefix="official-fetch-") as tmpdir:
        for kind, url, folders in SOURCES:
            wanted = {rel: folders[os.path.dirname(rel)] for rel in failed if os.path.dirname(rel) in folders}
            if not wanted:
                continue
            if kind == "zip":
                archive = os.path.join(tmpdir, "archive.zip")
                try:
                    log("downloading %s" % url)
                    _download(url, archive, timeout=600)
                    zf = zipfile.ZipFile(archive)
                except (OSError, zipfile.BadZipFile) as exc:
                    for rel in wanted:
                        failed[rel] = "%s: %s" % (url, exc)
                    continue
                members = {m.replace("\\", "/"): m for m in zf.namelist()}
            for rel, theirs in sorted(wanted.items()):
                tail = "%s/%s" % (theirs, os.path.basename(rel))
                tmp = os.path.join(tmpdir, "file.mat")
                try:
                    if kind == "zip":
                        hit = [m for m in members if m == tail or m.endswith("/" + tail)]
                        if not hit:
                            failed[rel] = "%s: no %s inside" % (url, tail)
                            continue
                        with zf.open(members[hit[0]]) as src, open(tmp, "wb") as out:
                            shutil.copyfileobj(src, out)
                        where = "%s!%s" % (url, hit[0])
                    else:
                        where = url + urllib.parse.quote(tail)
                        _download(where, tmp)
                except OSError as exc:
                    failed[rel] = "%s: %s" % (url, exc)
                    continue
                if datasets.sha256_file(tmp) != todo[rel]:
                    failed[rel] = "%s: checksum mismatch with %s" % (where, SUMS_FILE)
                    continue
                path = os.path.join(dest, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                shutil.move(tmp, path + ".part")
                os.replace(path + ".part", path)
                log("fetched %s (from %s)" % (path, where))
                written += 1
                del failed[rel]
            if kind == "zip":
                zf.close()
    if failed:
        rel = sorted(failed)[0]
        raise UserError("could not fetch %d file(s), first %s (%s)" % (len(failed), rel, failed[rel]))
    return written


# ---- evaluation -------------------------------------------------------------------------------

def evaluate_official(name, scale, datasets_=("Set5", "Set14"), padding="replicate", weights="auto"):
    """{dataset: evaluation.evaluate(...) result} of one official model."""
    from .evaluation import evaluate

    model = load_official(name, scale, padding=padding, weights=weights)
    label = name if padding == "replicate" else name + " (zero pad)"
    return {d: evaluate(model.upscaler, datasets.list_images(d), scale, label, dataset=d) for d in datasets_}
