"""Literal NumPy transcriptions of the authors' FSRCNN.m, SRCNN.m and deconv.m, reading the
released .mat arrays (srcaffe.official.read_mat) directly: the references the tests hold the
Caffe nets of the released models to."""
import numpy as np


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
