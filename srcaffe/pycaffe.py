"""The one way the toolkit makes a caffe.Net and runs it forward (glog is quieted by the
package's __init__ before anything imports caffe)."""
import os
import tempfile


def caffe():
    """The caffe module."""
    import caffe as module
    return module


def caffe_pb2():
    """Caffe's generated protobuf module (NetParameter, SolverParameter, SolverState, ...). Reading
    and writing prototxt and snapshots needs only it, so it is loaded from the caffe package's
    folder without running the package's __init__ (which loads _caffe.so, and caffe.io loads
    scikit-image and SciPy: about a second per process). It is registered under its own name,
    caffe.proto.caffe_pb2, so that a later `import caffe` takes this same module."""
    import sys

    name = "caffe.proto.caffe_pb2"
    if name in sys.modules:
        return sys.modules[name]
    if "caffe" not in sys.modules:
        import importlib.util

        spec = importlib.util.find_spec("caffe")
        locations = (spec and spec.submodule_search_locations) or []
        for folder in locations:
            path = os.path.join(folder, "proto", "caffe_pb2.py")
            if os.path.isfile(path):
                module_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
                return module
    from caffe.proto import caffe_pb2 as module
    return module


def net(prototxt, weights=None):
    """A caffe.Net in the TEST phase from a prototxt file, or from prototxt text (a string holding
    'layer', written to a temporary file that is removed once Caffe has read it), with weights
    from a .caffemodel file (checked by the caller: Caffe aborts on a mismatch)."""
    module = caffe()
    args = [weights] if weights else []
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
