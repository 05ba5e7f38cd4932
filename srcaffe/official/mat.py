""".mat -> Caffe blobs: the released arrays (MATLAB, column-major) as Caffe's (out, in, k, k)."""
import numpy as np

from .. import nets
from ..errors import UserError
from .registry import check_name, mat_path

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
    got = [b.shape for layer in out.values() for b in layer]
    want = [tuple(s) for s in nets.param_shapes(check_name(name)["arch"], scale)]
    if sorted(got) != sorted(want):
        raise UserError("%s x%d: converted blob shapes %s do not match the architecture's %s"
                        % (name, scale, got, want))
    return out
