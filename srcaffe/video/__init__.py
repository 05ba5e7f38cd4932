"""Video super-resolution with a trained FSRCNN / SRCNN: decode, upscale every frame, encode.

Decoding and encoding use PyAV (the `av` package: FFmpeg's libraries, bundled in its wheels, so
no system FFmpeg is needed). Three stages run in threads joined by bounded queues (pipeline), so
memory does not grow with the video and the wall time approaches that of the slowest stage:

    reader (demux + decode) -> worker (the network) -> writer (encode + mux, main thread)

Audio packets travel along the same queues untouched and are remuxed in their original order.
The output is written to a temporary name in the target folder (.NAME.PID.XXXX.tmp.EXT) and
renamed at the end; on Ctrl-C or SIGTERM the container is finalised and kept as NAME.partial.EXT
(playable, and it blocks nothing); on an error it is removed. A temporary file that a killed
process left (kill -9) is removed by the next run writing the same output.

--mode upscale works on the decoded Y'CbCr planes directly (no RGB round trip: the encoder wants
4:2:0 Y'CbCr anyway): the luma plane goes through the model's frame_upscaler (Model.upscale_y's
numbers, one net shape for the whole video), and Cb/Cr are resized with OpenCV's bicubic
(frames). --mode gt converts every frame to RGB and scores it exactly as an image file is scored
(predict.score_ground_truth, metrics.score), so its PSNR/SSIM equal evaluate's on the same
frames saved as images.

  reading    PyAV input: the container, frames and audio in file order, Y'CbCr planes
  writing    H.264 output: temporary file, partial file, frame times, remuxed audio
  pipeline   the three threads and the outputs' life cycle around them
  frames     one frame of --mode upscale (the model's frame_upscaler, chroma, --compare)
  modes      predict_video: --mode upscale and --mode gt
  clip       made clips for the tests and the benchmark
"""
from ..outputs import CRF, PRESET  # noqa: F401 (the encoder's settings, for callers)
from .clip import pan_zoom_clip  # noqa: F401
from .frames import VIDEO_MEMORY, ChromaUpscaler, even, frame_net, upscale_frame  # noqa: F401
from .modes import frame_range, parse_frames, predict_video  # noqa: F401
from .pipeline import run_pipeline  # noqa: F401
from .reading import BT601, BT709, JPEG_RANGE, MPEG_RANGE, Source, yuv_planes  # noqa: F401
from .writing import Sink, rgb_to_yuv420  # noqa: F401
