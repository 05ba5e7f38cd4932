"""The toolkit's nets in PyTorch, for speed comparisons only (bench/bench_train_speed.py, the GPU
check): the same layers, fillers, activations (PReLU with one shared slope, or ReLU), loss
(Caffe's EuclideanLoss: sum of squares / 2N) and Adam with Caffe's lr_mult. PyTorch is not a
requirement of the toolkit; importing this module does not import it.

    bench = TorchNet("fsrcnn", 3, data, label, device="cuda")   # data, label: float32 N x 1 x H x W
    bench.train_ms(100)                                         # ms per Adam step, batch 128
    forward_ms("fsrcnn", 3, 366, 646, 50, device="cuda")        # ms per forward pass of one image
"""
import time

from . import nets

BATCH = nets.TRAIN_BATCH


def _sequential(model, scale):
    """(nn.Sequential of the net, Adam's parameter groups with Caffe's lr_mult)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, params, n_in = [], [], 1
    spec = nets.layers(model, scale)
    fsrcnn = isinstance(nets.architecture(model), nets.FSRCNN)
    for i, l in enumerate(spec):
        if l.kind == "conv":
            m = nn.Conv2d(n_in, l.num_output, l.kernel, stride=l.stride, padding=l.pad)
        else:   # Caffe Deconvolution: out = stride*(in-1) + kernel - 2*pad, as ConvTranspose2d
            m = nn.ConvTranspose2d(n_in, l.num_output, l.kernel, stride=l.stride, padding=l.pad)
        nn.init.normal_(m.weight, std=l.std)
        nn.init.zeros_(m.bias)
        layers.append(m)
        params += [{"params": [m.weight], "lr": 1e-3 * l.lr_mult[0]},
                   {"params": [m.bias], "lr": 1e-3 * l.lr_mult[1]}]
        if i < len(spec) - 1 and fsrcnn:
            act = nn.PReLU(num_parameters=1, init=0.25)   # channel_shared: one slope
            layers.append(act)
            params.append({"params": list(act.parameters()), "lr": 1e-3})
        elif i < len(spec) - 1:
            layers.append(nn.ReLU(inplace=True))
        n_in = l.num_output
    return nn.Sequential(*layers), params


def _sync(device):
    import torch
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class TorchNet:
    """The Caffe train net in PyTorch on batches of 128 of the given patches."""

    def __init__(self, model, scale, data, label, threads=0, device="cpu"):
        import torch

        self.device = device
        if threads:
            torch.set_num_threads(threads)
        net, params = _sequential(model, scale)
        self.net = net.to(device)
        self.opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        self.data, self.label = torch.from_numpy(data).to(device), torch.from_numpy(label).to(device)
        self.batches = len(data) // BATCH
        if self.batches < 1:
            raise ValueError("TorchNet needs at least %d patches, got %d" % (BATCH, len(data)))
        self.i = 0
        out = self.net(self.data[:1])
        assert out.shape[-2:] == self.label.shape[-2:], (out.shape, self.label.shape)

    def _batch(self):
        b = self.i % self.batches
        self.i += 1
        return self.data[b * BATCH:(b + 1) * BATCH], self.label[b * BATCH:(b + 1) * BATCH]

    def _fwd_bwd(self):
        x, y = self._batch()
        self.opt.zero_grad(set_to_none=False)
        loss = ((self.net(x) - y) ** 2).sum() / (2 * x.shape[0])   # Caffe's EuclideanLoss
        loss.backward()
        return loss

    def _timed(self, iters, step):
        for _ in range(5):
            step()
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        _sync(self.device)
        return 1000.0 * (time.perf_counter() - t0) / iters

    def fwd_bwd_ms(self, iters):
        """ms per forward + backward (as `caffe time`)."""
        return self._timed(iters, self._fwd_bwd)

    def train_ms(self, iters):
        """ms per Adam step (as `caffe train`)."""
        def step():
            self._fwd_bwd()
            self.opt.step()
        return self._timed(iters, step)


def forward_ms(model, scale, height, width, iters, device="cpu"):
    """ms per forward pass of one height x width input image (inference), no gradients."""
    import torch

    net = _sequential(model, scale)[0].to(device).eval()
    x = torch.rand(1, 1, height, width, device=device)
    with torch.no_grad():
        for _ in range(5):
            net(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            net(x)
        _sync(device)
    return 1000.0 * (time.perf_counter() - t0) / iters
