"""The threaded pipeline: decoding, the network and encoding in three threads joined by
bounded queues (memory does not grow with the video; the wall time approaches that of the
slowest stage), and the outputs' life cycle around it (finished, partial on Ctrl-C, removed on
an error)."""
import contextlib
import queue
import signal
import sys
import threading
import time

from ..cli import Terminated
from ..errors import UserError

QUEUE = 4                      # frames in flight per queue: bounds the memory

_END = object()


class _Failed:
    def __init__(self, exc):
        self.exc = exc


def _put(q, item, stopping):
    while not stopping.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _timed(iterable, busy, key):
    """The items of an iterable, the time spent producing them added to busy[key]."""
    it = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            busy[key] += time.perf_counter() - t0
        yield item


def _stage(fn, items, q_out, stopping):
    """Run fn(item) over an iterable in a thread, results into q_out; an exception is handed on."""
    def run():
        try:
            for item in items:
                if stopping.is_set() or not _put(q_out, fn(item), stopping):
                    return
            _put(q_out, _END, stopping)
        except BaseException as exc:   # handed to the main thread, which raises it
            _put(q_out, _Failed(exc), stopping)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _drain(q, stopping):
    while not stopping.is_set():
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.exc
        yield item


def run_pipeline(source, first, stop, process, write, total=None, desc=None, busy=None):
    """Decode frames first..stop-1 in one thread, process(index, frame) in another, and
    write(item) here; audio items go straight through. Returns the number of frames written;
    busy (a dict) gets each stage's working seconds: decode, network, encode."""
    from tqdm import tqdm

    busy = {} if busy is None else busy
    busy.update(decode=0.0, network=0.0, encode=0.0)
    stopping = threading.Event()
    q1, q2 = queue.Queue(QUEUE), queue.Queue(QUEUE)

    def work(item):
        if item[0] == "audio":
            return item
        t0 = time.perf_counter()
        out = ("video", item[1], item[2].time, process(item[1], item[2]))
        busy["network"] += time.perf_counter() - t0
        return out
    threads = [_stage(lambda item: item, _timed(source.items(first, stop, stopping), busy, "decode"), q1, stopping),
               _stage(work, _drain(q1, stopping), q2, stopping)]
    bar = tqdm(total=total, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
               disable=None, smoothing=0.1)
    n = 0
    try:
        for item in _drain(q2, stopping):
            t0 = time.perf_counter()
            write(item)
            busy["encode"] += time.perf_counter() - t0
            if item[0] == "video":
                n += 1
                bar.update(1)
    finally:
        stopping.set()
        bar.close()
        for t in threads:
            t.join(timeout=30)   # Caffe's forward pass cannot be interrupted: wait for it
    return n


@contextlib.contextmanager
def _no_ctrl_c():
    """SIGINT and SIGTERM ignored while the outputs are finalised (a second or so), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run(source, sinks, first, stop, process, write, desc):
    """The pipeline with the sinks' life cycle: finished on success, partial on Ctrl-C, removed
    on an error. Returns (frames, seconds, the paths written, a line of the stages' times)."""
    t0 = time.perf_counter()
    busy = {}
    try:
        n = run_pipeline(source, first, stop, process, write, source.expected(first, stop), desc, busy)
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM (cli.Terminated)
        with _no_ctrl_c():   # a second Ctrl-C must not leave a half-closed file
            kept = [k for k in (s.abort(True) for s in sinks.values()) if k]
        print("%s: " % ("terminated" if isinstance(exc, Terminated) else "interrupted")
              + ("partial video kept in %s" % ", ".join(kept) if kept else "nothing written"), file=sys.stderr)
        raise
    except BaseException:
        for s in sinks.values():
            s.abort(False)
        raise
    if n == 0:
        for s in sinks.values():
            s.abort(False)
        raise UserError("%s: no frame decoded in the selected range" % source.path)
    t1 = time.perf_counter()
    with _no_ctrl_c():
        paths = [s.finish() for s in sinks.values()]
    busy["encode"] += time.perf_counter() - t1   # the encoder's delayed frames
    secs = time.perf_counter() - t0
    times = "  time: %.1f s (%.1f frames/s); working time of each stage (they overlap): decode %.1f s, " \
            "network %.1f s, encode %.1f s" % (secs, n / secs, busy["decode"], busy["network"], busy["encode"])
    return n, secs, paths, times
