"""A progress line on stderr for image jobs that run long (a huge image in bands): nothing for
the first SRCAFFE_PROGRESS_AFTER seconds (default 3), then at most one update a second, e.g.
    upscaling: 40% (1200/3000 rows), ETA 25 s
"""
import sys
import time

from .paths import progress_after


class Rows:
    def __init__(self, what, total, stream=None):
        self.what, self.total, self.stream = what, total, stream or sys.stderr
        self.t0 = time.monotonic()
        self.after, self.shown, self.printed = progress_after(), 0.0, False

    def __call__(self, done):
        now = time.monotonic()
        elapsed = now - self.t0
        if elapsed < self.after or (now - self.shown < 1 and done < self.total):
            return
        self.shown, self.printed = now, True
        eta = elapsed * (self.total - done) / max(done, 1)
        self.stream.write("\r%s: %d%% (%d/%d rows), ETA %.0f s   " % (self.what, 100 * done // max(self.total, 1),
                                                                    done, self.total, eta))
        self.stream.flush()

    def close(self):
        if self.printed:
            self.stream.write("\n")
            self.stream.flush()
