"""FSRCNN and SRCNN as the authors defined them, written with pycaffe's net_spec.

Every prototxt under prototxt/ is generated here (tools/make_nets.py), never edited by hand.
The geometry of a net (patch sizes, how far the label is shifted from the input) is derived
from its layers by `geometry()`, so the data tool and the inference code cannot disagree with
the prototxt: Caffe's Deconvolution has no output padding (out = stride*(in-1) + kernel - 2*pad).
"""
import functools
import math
import re
from collections import namedtuple

from .errors import UserError

FSRCNN = namedtuple("FSRCNN", "d s m")
SRCNN = namedtuple("SRCNN", "f1 f2 f3 n1 n2")

# name -> architecture; FSRCNN(d, s, m) variants can also be named fsrcnn-D-S-M.
MODELS = {
    "fsrcnn": FSRCNN(56, 12, 4),
    "fsrcnn-s": FSRCNN(32, 5, 1),
    "srcnn": SRCNN(9, 1, 5, 64, 32),
    "srcnn-935": SRCNN(9, 3, 5, 64, 32),
    "srcnn-955": SRCNN(9, 5, 5, 64, 32),
}
SCALES = (2, 3, 4)

# The authors' training patches: FSRCNN generate_train.m takes 11x11 LR sub-images with stride 4
# (x3); SRCNN generate_train.m takes 33x33 bicubic-upscaled sub-images with stride 14.
FSRCNN_LR_PATCH, FSRCNN_LR_STRIDE = 11, 4
SRCNN_PATCH, SRCNN_STRIDE = 33, 14
TRAIN_BATCH, TEST_BATCH = 128, 2

Layer = namedtuple("Layer", "name kind kernel stride pad num_output std lr_mult")


def architecture(model):
    """The architecture for a model name (fsrcnn, fsrcnn-s, fsrcnn-D-S-M, srcnn, srcnn-935, ...)."""
    if model in MODELS:
        return MODELS[model]
    match = re.fullmatch(r"fsrcnn-(\d+)-(\d+)-(\d+)", model)
    if match:
        return FSRCNN(*map(int, match.groups()))
    raise UserError("unknown model '%s' (known: %s, or fsrcnn-D-S-M)" % (model, ", ".join(MODELS)))


@functools.lru_cache(maxsize=None)
def layers(model, scale):
    """The spatial layers of a model, in order, with the authors' fillers and lr_mult (a tuple,
    derived once per model and scale)."""
    return tuple(_layers(model, scale))


def _layers(model, scale):
    arch = architecture(model)
    if isinstance(arch, FSRCNN):
        def msra_std(k, n_out):   # the authors' stds are sqrt(2 / (k*k*n_out)), e.g. 0.0378 for 5x5x56
            return round(math.sqrt(2.0 / (k * k * n_out)), 4)
        d, s, m = arch
        out = [Layer("conv1", "conv", 5, 1, 0, d, msra_std(5, d), (1, 0.1)),
               Layer("conv2", "conv", 1, 1, 0, s, msra_std(1, s), (1, 0.1))]
        out += [Layer("conv2%d" % (i + 2), "conv", 3, 1, 1, s, msra_std(3, s), (1, 0.1)) for i in range(m)]
        out += [Layer("conv2%d" % (m + 2), "conv", 1, 1, 0, d, msra_std(1, d), (1, 0.1)),
                Layer("conv3", "deconv", 9, scale, 4, 1, 0.001, (0.1, 0.1))]
        return out
    f1, f2, f3, n1, n2 = arch
    return [Layer("conv1", "conv", f1, 1, 0, n1, 0.001, (1, 0.1)),
            Layer("conv2", "conv", f2, 1, 0, n2, 0.001, (1, 0.1)),
            Layer("conv3", "conv", f3, 1, 0, 1, 0.001, (0.1, 0.1))]


Geometry = namedtuple("Geometry", "input_size label_size label_offset upsampled_input")
Geometry.__doc__ = """Patch geometry of a net.

input_size:  side of an input patch (LR pixels for FSRCNN, bicubic-upscaled HR pixels for SRCNN)
label_size:  side of the net's output for that input (= the HDF5 label)
label_offset: for an input patch whose first pixel is at (y, x) of its image, the label's first
             pixel is at HR (scale*y + label_offset) for FSRCNN, (y + label_offset) for SRCNN.
upsampled_input: True for SRCNN (input is bicubic-upscaled), False for FSRCNN (input is LR).
"""


def output_size(model, scale, input_size):
    """Output side of the net for an input side, walking the layers as Caffe does."""
    size = input_size
    for layer in layers(model, scale):
        if layer.kind == "conv":
            size = (size + 2 * layer.pad - layer.kernel) // layer.stride + 1
        else:  # Caffe DeconvolutionLayer: no output padding
            size = layer.stride * (size - 1) + layer.kernel - 2 * layer.pad
    return size


def centre_offset(model, scale):
    """Where output pixel 0 lies: in input pixels for SRCNN, in HR pixels (for LR pixel 0) for FSRCNN.

    A conv layer shifts the first output's centre by (k-1)/2 - pad input pixels. A deconv's
    output o takes its centre tap from input i at o = stride*i + (k-1)/2 - pad; LR pixel i is
    centred on HR pixel stride*i + (stride-1)/2 in MATLAB's imresize geometry, rounded up for even
    scales as the authors' generate_train.m does.
    """
    offset = 0
    for layer in layers(model, scale):
        if layer.kind == "conv":
            offset += (layer.kernel - 1) // 2 - layer.pad
        else:
            offset = layer.stride * offset + (layer.stride - 1 + 1) // 2 - ((layer.kernel - 1) // 2 - layer.pad)
    return offset


def geometry(model, scale, input_size=None):
    arch = architecture(model)
    upsampled = isinstance(arch, SRCNN)
    if input_size is None:
        input_size = SRCNN_PATCH if upsampled else FSRCNN_LR_PATCH
    label = output_size(model, scale, input_size)
    if label < 1:
        raise UserError("model %s: an input of %d pixels is smaller than its receptive field" % (model, input_size))
    return Geometry(input_size, label, centre_offset(model, scale), upsampled)


def check_scale(scale):
    if scale not in SCALES:
        raise UserError("scale must be one of %s, not %s" % ("/".join(map(str, SCALES)), scale))


class Architecture:
    """One model at one scale, derived once from its layers and passed on: name, scale, layers,
    patch geometry, centre offset, learnable blob shapes and the deploy prototxt. Get it with
    arch(model, scale) (cached)."""

    def __init__(self, model, scale):
        check_scale(scale)
        self.name, self.scale, self.spec = model, scale, architecture(model)
        self.fsrcnn = isinstance(self.spec, FSRCNN)
        self.layers = tuple(layers(model, scale))
        self.geometry = geometry(model, scale)
        self.upsampled_input = self.geometry.upsampled_input
        self.centre_offset = centre_offset(model, scale)
        self.param_shapes = tuple(param_shapes(model, scale))

    def __repr__(self):
        return "Architecture(%s x%d)" % (self.name, self.scale)

    def output_size(self, input_size):
        return output_size(self.name, self.scale, input_size)

    def deploy_prototxt(self, height=None, width=None):
        return deploy_net(self.name, self.scale, height, width)


@functools.lru_cache(maxsize=None)
def arch(model, scale):
    """The Architecture of a model name at a scale (one object per pair)."""
    return Architecture(model, int(scale))


def param_shapes(model, scale):
    """Learnable blob shapes in Caffe's order: (weight, bias) of each layer, then PReLU slopes."""
    return [shape for _, shapes in learnable_blobs(model, scale) for shape in shapes]


def learnable_blobs(model, scale):
    """[(layer name, [blob shapes])] of a net's learnable layers in Caffe's order: each spatial
    layer (weight, bias), then for FSRCNN its PReLU (one scalar slope), named as _net_spec names
    them, so a .caffemodel's blobs can be named and checked without building the net."""
    out, n_in = [], 1
    spec = layers(model, scale)
    fsrcnn = isinstance(architecture(model), FSRCNN)
    for i, layer in enumerate(spec):
        if layer.kind == "conv":
            weight = (layer.num_output, n_in, layer.kernel, layer.kernel)
        else:  # Deconvolution stores its weights as (in, out, k, k)
            weight = (n_in, layer.num_output, layer.kernel, layer.kernel)
        out.append((layer.name, [weight, (layer.num_output,)]))
        if i < len(spec) - 1 and fsrcnn:
            out.append((activation_name(layer, fsrcnn), [()]))   # PReLU with channel_shared
        n_in = layer.num_output
    return out


# ---- engines --------------------------------------------------------------------------------------

# Caffe's engines, set per layer (the `engine` of a layer type's parameters): caffe is Caffe's own
# code (with the toolkit's batched convolution), cudnn NVIDIA's cuDNN (GPU mode only). A layer that
# names none gets Caffe's default: cuDNN in GPU mode when the build has it, else Caffe's own.
ENGINES = ("caffe", "cudnn")
# Intel's Caffe chooses its engines with `caffe train -engine NAME` instead (tools/train.py passes it on)
INTEL_ENGINES = ("MKL2017", "MKLDNN")
ENGINE_PARAMS = {"Convolution": "convolution_param", "Deconvolution": "convolution_param",
                 "ReLU": "relu_param", "Pooling": "pooling_param", "Sigmoid": "sigmoid_param",
                 "TanH": "tanh_param", "Softmax": "softmax_param", "LRN": "lrn_param"}


def set_engine(net, engine):
    """Set `engine` (caffe or cudnn) on every layer of a NetParameter that has one; the net's other
    fields are left as they are."""
    if engine not in ENGINES:
        raise UserError("unknown engine '%s' (known: %s)" % (engine, ", ".join(ENGINES)))
    for layer in net.layer:
        field = ENGINE_PARAMS.get(layer.type)
        if field:
            param = getattr(layer, field)
            param.engine = type(param).Engine.Value(engine.upper())


# ---- prototxt ---------------------------------------------------------------------------------

def _net_spec(model, scale, data, frozen=False, init="authors"):
    """Build a NetSpec: `data(n)` adds the input layer(s); returns (spec, last top).

    init: 'authors' (their gaussian fillers) or 'he' (Caffe's msra filler, He et al.: gaussian
    with std sqrt(2/fan_in); how SRCNN starts under Adam: srcaffe.runs.default_init).

    frozen: lr_mult 0 on every layer but the last, the paper's way to get x2/x4 FSRCNN from the
    x3 model (only the deconvolution is fine-tuned; its weights have the same shape at every scale).
    """
    from caffe import layers as L, params as P, NetSpec

    n = NetSpec()
    data(n, L, P)
    top = n.data
    spec = layers(model, scale)
    fsrcnn = isinstance(architecture(model), FSRCNN)
    for i, layer in enumerate(spec):
        last = i == len(spec) - 1
        lr_mult = (0, 0) if frozen and not last else layer.lr_mult
        params = [dict(lr_mult=lr_mult[0]), dict(lr_mult=lr_mult[1])]
        conv_param = dict(num_output=layer.num_output, kernel_size=layer.kernel, stride=layer.stride,
                          pad=layer.pad, weight_filler=dict(type="msra") if init == "he"
                          else dict(type="gaussian", std=layer.std),
                          bias_filler=dict(type="constant", value=0))
        if layer.kind == "conv":
            top = L.Convolution(top, param=params, convolution_param=conv_param)
        else:
            top = L.Deconvolution(top, param=params, convolution_param=conv_param)
        setattr(n, layer.name, top)
        if not last:   # every conv but the last is followed by its activation, in place
            prelu = dict(prelu_param=dict(channel_shared=True), in_place=True)
            if frozen:
                prelu["param"] = [dict(lr_mult=0)]
            act = L.PReLU(top, **prelu) if fsrcnn else L.ReLU(top, in_place=True)
            setattr(n, activation_name(layer, fsrcnn), act)
    return n, top


def activation_name(layer, fsrcnn):
    """The name of the activation after a spatial layer: prelu2 after conv2, relu1 after conv1."""
    return ("prelu" if fsrcnn else "relu") + layer.name[4:]


def train_test_net(model, scale, train_source, test_source, label_size, frozen=False, init="authors"):
    """Train/test prototxt (HDF5Data), EuclideanLoss, and a test-phase PSNR computed by Caffe."""
    def data(n, L, P):
        n.data, n.label = L.HDF5Data(hdf5_data_param=dict(source=train_source, batch_size=TRAIN_BATCH),
                                     include=dict(phase=0), ntop=2)
        n.test_data, n.test_label = L.HDF5Data(hdf5_data_param=dict(source=test_source, batch_size=TEST_BATCH),
                                               include=dict(phase=1), ntop=2)
    from caffe import layers as L

    n, top = _net_spec(model, scale, data, frozen, init)
    n.loss = L.EuclideanLoss(top, n.label)
    # Test-phase PSNR on [0,1], computed by Caffe's own layers (no Python layer): a second,
    # weightless Euclidean loss (so `loss` stays a reported output) gives sum(diff^2) / (2*batch);
    # mse = 2*that / label_pixels and psnr = -10*log10(mse).
    n.sq_error = L.EuclideanLoss(top, n.label, loss_weight=0, include=dict(phase=1))
    n.log_mse = L.Log(n.sq_error, log_param=dict(base=10, scale=2.0 / label_size ** 2), include=dict(phase=1))
    n.psnr = L.Power(n.log_mse, power_param=dict(scale=-10), include=dict(phase=1))
    text = str(n.to_proto())
    # net_spec names tops uniquely; Caffe's TRAIN/TEST data layers must share the tops data/label.
    text = text.replace('"test_data"', '"data"').replace('"test_label"', '"label"')
    name = "%s_x%d%s" % (model.upper().replace("-", "_"), scale, "_deconv_only" if frozen else "")
    return 'name: "%s"\n%s' % (name, text)


def deploy_net(model, scale, height=None, width=None):
    """Deploy prototxt: an Input layer, the same spatial layers (pad as in training)."""
    g = geometry(model, scale)
    height, width = height or g.input_size, width or g.input_size

    def data(n, L, P):
        n.data = L.Input(input_param=dict(shape=dict(dim=[1, 1, height, width])))
    n, _ = _net_spec(model, scale, data)
    return 'name: "%s_x%d"\n%s' % (model.upper().replace("-", "_"), scale, n.to_proto())
