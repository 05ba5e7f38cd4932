"""The one way the toolkit makes a caffe.Net and runs it forward (glog is quieted by the
package's __init__ before anything imports caffe)."""
import os
import tempfile


def caffe():
    """The caffe module."""
    import caffe as module
    return module


PB2 = "caffe.proto.caffe_pb2"


def caffe_pb2():
    """Caffe's generated protobuf module (NetParameter, SolverParameter, SolverState, ...). Reading
    and writing prototxt and snapshots needs only it, so it is loaded from the caffe package's
    folder without running the package's __init__ (which loads _caffe.so, and caffe.io loads
    scikit-image and SciPy: about a second per process). It is registered under its own name, so
    that a later `import caffe` takes this same module (protobuf refuses a second copy of
    caffe.proto), and bound as caffe.proto's attribute once that package is imported."""
    import sys

    if PB2 in sys.modules:
        return sys.modules[PB2]
    if "caffe" not in sys.modules:
        import importlib.util

        spec = importlib.util.find_spec("caffe")
        for folder in (spec and spec.submodule_search_locations) or []:
            path = os.path.join(folder, "proto", "caffe_pb2.py")
            if os.path.isfile(path):
                module_spec = importlib.util.spec_from_file_location(PB2, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[PB2] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[PB2]
                    raise
                sys.meta_path.insert(0, _BindPb2())
                return module
    from caffe.proto import caffe_pb2 as module
    return module


class _BindPb2:
    """A finder for caffe.proto alone, there once caffe_pb2 was loaded first: it finds the package
    as the import system would and, once the package has run, sets its caffe_pb2 attribute (what
    the import system does for a submodule it loads itself), then leaves sys.meta_path."""

    def find_spec(self, name, path=None, target=None):
        if name != "caffe.proto":
            return None
        import importlib.machinery
        import sys

        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                module.caffe_pb2 = sys.modules[PB2]
            spec.loader.exec_module = exec_module
        return spec


# The engine every net made here gets (srcaffe.device.use sets it); None: the prototxt's own.
_engine = None


def set_engine(engine):
    """Caffe's engine (srcaffe.nets.ENGINES) for the nets made from now on; None: as written."""
    global _engine
    _engine = engine


def with_engine(text, engine):
    """Prototxt text of a net with Caffe's `engine` (srcaffe.nets.ENGINES) on every layer that has one."""
    from google.protobuf import text_format

    from . import nets
    msg = text_format.Parse(text, caffe_pb2().NetParameter())
    nets.set_engine(msg, engine)
    return text_format.MessageToString(msg)


def net(prototxt, weights=None):
    """A caffe.Net in the TEST phase from a prototxt file, or from prototxt text (a string holding
    'layer', written to a temporary file that is removed once Caffe has read it), with weights
    from a .caffemodel file (checked by the caller: Caffe aborts on a mismatch). With an engine
    set (set_engine), the net Caffe reads is a copy with that engine on every layer that has one."""
    module = caffe()
    args = [weights] if weights else []
    if _engine is not None:
        prototxt = with_engine(open(prototxt).read() if "\n" not in prototxt else prototxt, _engine)
    if "\n" not in prototxt:   # a file
        return module.Net(prototxt, *args, module.TEST)
    fd, tmp = tempfile.mkstemp(suffix=".prototxt", prefix="srcaffe-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(prototxt)
        return module.Net(tmp, *args, module.TEST)
    finally:
        os.remove(tmp)


def forward(net, x, input_name="data", output_name=None):
    """The net's output for one float map x (H x W): the input blob reshaped to 1x1xHxW, float32.
    Returns a view of the output blob's first map (valid until the next forward)."""
    blob = net.blobs[input_name]
    if blob.data.shape != (1, 1) + tuple(x.shape):
        blob.reshape(1, 1, *x.shape)
        net.reshape()
    blob.data[0, 0] = x
    net.forward()
    return net.blobs[output_name or net.outputs[0]].data[0, 0]
