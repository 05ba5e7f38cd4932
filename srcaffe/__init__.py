"""srcaffe: a Caffe-faithful reproduction toolkit for SRCNN and FSRCNN (Dong et al.).

The pipeline, module by module (tools/*.py are thin command-line entry points over these):

  datasets       T91 / Set5 / Set14: fetch (fetching: one verified downloader), verify, locate
  matlab         MATLAB-exact image operations (imresize bicubic, rgb2ycbcr, modcrop, shave)
  hdf5_patches   the authors' generate_train.m / data_aug.m: HDF5 patch folders for Caffe
  nets           architectures (one Architecture per model and scale: layers, geometry,
                 offsets, blob shapes) and their prototxt, written with net_spec
  solvers        the authors' SGD and the CPU user's Adam, as caffe_pb2 SolverParameters
  runs           a training run's folder: checks, data, the exact net and solver of a segment
  trainer        `caffe train` on a run: its log, progress, signals, timed snapshots, why it died
  caffe_env      Caffe's environment knobs (CAFFE_CONV_BATCH_MB), checked before Caffe starts
  caffelog       Caffe's training logs: parse, CSV, plots
  snapshots      a run's snapshots: found, checked, chosen
  weights        .caffemodel files: read, identified, checked (never by Caffe first)
  snapshot_eval  Set5/Set14 PSNR of a run's snapshots (the papers' convergence figures)
  release        shipping a run's weights into models/
  models         which model a spec means (shipped name, official name, caffemodel, run
                 folder): one resolver, returning an Upscaler (upscaling: the interface, colour,
                 bands); inference: the toolkit's nets on whole images, tiled; pycaffe: the one
                 caffe.Net loader and forward
  predict        the authors' demo on one image (ground truth / upscale); outputs: their names
  video/         predict on videos: PyAV reading and writing, the threaded pipeline, the modes
  progress       a progress line for long work (tiles, bands)
  evaluation     per-image and mean PSNR/SSIM of a method (metrics: PSNR/SSIM as MATLAB)
  official/      the authors' released models in Caffe (registry, .mat, deploy nets, model, fetch)
  mmsr/          multi-model SR: texture classes (TVAT), class data, jobs, routed reconstruction
  paths, files, errors, cli, venv
                 one place each for: locations and SRCAFFE_* variables, safe writes and the
                 overwrite rule, the one-line error, command-line plumbing, the venv
"""
# Caffe's glog prints every layer it sets up unless told otherwise before caffe (or caffe.proto)
# is first imported: quiet by default for everything of the toolkit, the user's setting wins.
from .paths import ROOT, default_env  # noqa: F401

default_env(GLOG_minloglevel="2")


def load_model(spec, scale=None, arch=None, pad="replicate", tile=None):
    """An Upscaler for a model spec (srcaffe.models.load_model): `.upscale(rgb_uint8)`,
    `.upscale_y(y_float)`, name, scale, arch."""
    from .models import load_model as load
    return load(spec, scale=scale, arch=arch, pad=pad, tile=tile)
