"""The one way the toolkit makes a caffe.Net and runs it forward (glog is quieted by the
package's __init__ before anything imports caffe)."""
import os
import tempfile


def caffe():
    """The caffe module."""
    import caffe as module
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
