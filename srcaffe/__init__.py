"""srcaffe: a Caffe-faithful reproduction toolkit for SRCNN and FSRCNN (Dong et al.).

Modules:
  matlab      MATLAB-exact image operations (imresize bicubic, rgb2ycbcr, modcrop, shave)
  metrics     PSNR / SSIM as the authors and MATLAB compute them
  images      reading and writing images
  datasets    the T91 / Set5 / Set14 registry: fetch, verify, locate
  evaluation  per-image and mean PSNR/SSIM of a method on a dataset
  cli         shared command-line plumbing (one-line errors, exit codes)
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
