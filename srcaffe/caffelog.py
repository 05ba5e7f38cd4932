"""Caffe (glog) training logs: parse, export CSV, plot, and follow a running `caffe train`.

    caffe train -solver S 2>&1 | python -m srcaffe.caffelog --log train.log --max-iter 40000

classify(line) reads one line into a Line record (iteration and loss, a test output, lr,
snapshot, restore, an error ...): parse_log (a finished log) and Progress (a running one) read
the lines through it alike.

parse_log() returns
    train:        [{iter, seconds, lr, <train output names>...}]   sorted by iteration
    test:         [{iter, seconds, <test output names>...}]        ('loss', 'psnr', ...)
    snapshots:    [{iter, caffemodel, solverstate}]
    resumed_from: [{iter, file}]   one per run that starts past iteration 0 (file None if not logged)
    runs:         the runs found, unmerged (input of merge())
'seconds' is cumulative training wall time: a resumed run continues the clock of the run before it.
Where a resumed run repeats iterations (resumed from an older snapshot, or the final iteration's
loss and test of the previous run), the later run's numbers are kept.
"""
import argparse
import csv
import datetime
import io
import os
import re
import signal
import sys
import time
import typing

from . import files
from .cli import ArgumentParser, run_main
from .errors import UserError

# glog prefix: severity, [yyyy]mmdd (glog >= 0.6 writes the year), time, thread id, file:line]
GLOG = re.compile(r"^([IWEF])(\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s+\S+\s+[^\]\s]+\]\s?")
# 'Iteration 100 (19.8 iter/s, 5.05s/100 iters), loss = x'; older Caffe and the final
# iteration write 'Iteration 100, loss = x'
ITER_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = (\S+)")
LR = re.compile(r"Iteration (\d+), lr = (\S+)")
TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = (\S+)")
SNAPSHOT = re.compile(r"Snapshotting (solver state )?to (?:binary proto|HDF5) file (\S+)")
RESUME = re.compile(r"(?:Resuming from|Restoring previous solver status from) (\S+)")
# the first line of `caffe train` (caffe.cpp), and of every solver (also when driven from Python)
CAFFE_START = re.compile(r"Use CPU\.|Using GPUs")
SOLVER_START = "Initializing solver from parameters"
MAX_ITER = re.compile(r"^\s*max_iter: (\d+)\s*$")  # from the solver parameters Caffe prints


class Kind:
    """The kinds of log line (Line.kind)."""
    START = "start"          # `caffe train` starts (caffe.cpp's first line)
    SOLVER = "solver"        # a solver starts ("Initializing solver from parameters")
    ITER = "iter"            # iteration and training loss (the display line)
    TESTING = "testing"      # a test phase of test net `net` starts at iteration `iter`
    LR = "lr"                # the learning rate at an iteration
    OUTPUT = "output"        # a net output: phase Train or Test, name, value
    SNAPSHOT = "snapshot"    # a snapshot written: file (state: the solverstate), iter when the name says
    RESTORE = "restore"      # a resumed run: the solverstate it restores
    MAX_ITER = "max_iter"    # the solver parameter max_iter (iter), as Caffe prints the parameters
    DONE = "done"            # "Optimization Done."
    STOPPED = "stopped"      # "Optimization stopped early."
    TRACE = "trace"          # glog's stack trace after a fatal error ("*** ...")
    OTHER = "other"


class Line(typing.NamedTuple):
    """One Caffe log line, classified (classify). Fields not of its kind are None."""
    kind: str
    severity: typing.Optional[str] = None   # glog's I, W, E or F (None: no glog prefix)
    stamp: typing.Optional[tuple] = None    # glog's (year or None, month, day, hour, min, sec, usec)
    iter: typing.Optional[int] = None
    value: typing.Optional[float] = None    # ITER: loss, LR: lr, OUTPUT: the value (None: not a number)
    text: typing.Optional[str] = None       # that value as logged (e.g. "nan")
    name: typing.Optional[str] = None       # OUTPUT: the output's name
    phase: typing.Optional[str] = None      # OUTPUT: "Train" or "Test"
    net: typing.Optional[int] = None        # TESTING: the test net's number (#0, #1, ...)
    file: typing.Optional[str] = None       # SNAPSHOT, RESTORE
    state: typing.Optional[bool] = None     # SNAPSHOT: the solverstate (not the caffemodel)

    @property
    def error(self):
        """glog's E and F lines and the stack trace after an F."""
        return self.severity in ("E", "F") or self.kind == Kind.TRACE


def classify(line):
    """The Line record of one log line (with or without glog's prefix, newline or not)."""
    line = line.rstrip("\r\n")
    m = GLOG.match(line)
    prefix = {}
    if m:
        prefix = dict(severity=m.group(1), stamp=(int(m.group(2)) if m.group(2) else None,) + tuple(
            int(g) for g in m.group(3, 4, 5, 6, 7)) + (int((m.group(8) or "0")[:6].ljust(6, "0")),))
    msg = line[m.end():] if m else line
    if not m and line.startswith("*** "):
        return Line(Kind.TRACE)
    if CAFFE_START.search(msg):
        return Line(Kind.START, **prefix)
    if SOLVER_START in msg:
        return Line(Kind.SOLVER, **prefix)
    hit = ITER_LOSS.search(msg)
    if hit:
        return Line(Kind.ITER, iter=int(hit.group(1)), value=_float(hit.group(2)), text=hit.group(2), **prefix)
    hit = TESTING.search(msg)
    if hit:
        return Line(Kind.TESTING, iter=int(hit.group(1)), net=int(hit.group(2)), **prefix)
    hit = LR.search(msg)
    if hit:
        return Line(Kind.LR, iter=int(hit.group(1)), value=_float(hit.group(2)), text=hit.group(2), **prefix)
    hit = OUTPUT.search(msg)
    if hit:
        return Line(Kind.OUTPUT, phase=hit.group(1), name=hit.group(2), value=_float(hit.group(3)), text=hit.group(3),
                    **prefix)
    hit = SNAPSHOT.search(msg)
    if hit:
        named = re.search(r"_iter_(\d+)\.", hit.group(2))
        return Line(Kind.SNAPSHOT, file=hit.group(2), state=bool(hit.group(1)),
                    iter=int(named.group(1)) if named else None, **prefix)
    hit = RESUME.search(msg)
    if hit:
        return Line(Kind.RESTORE, file=hit.group(1), **prefix)
    hit = None if m else MAX_ITER.match(line)   # the parameters follow glog's line unprefixed
    if hit:
        return Line(Kind.MAX_ITER, iter=int(hit.group(1)))
    if "Optimization stopped early." in msg:
        return Line(Kind.STOPPED, **prefix)
    if "Optimization Done." in msg:
        return Line(Kind.DONE, **prefix)
    return Line(Kind.OTHER, **prefix)


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


class _Clock:
    """glog timestamps -> seconds on one increasing axis (across midnight, and New Year when
    the year is not logged)."""

    def __init__(self):
        self.last, self.years = None, 0

    def __call__(self, stamp):
        year = stamp[0] if stamp[0] is not None else 2000 + self.years   # 2000: leap year, Feb 29 parses
        try:
            t = datetime.datetime(year, *stamp[1:])
        except ValueError:
            return self.last
        seconds = (t - datetime.datetime(2000, 1, 1)).total_seconds()   # naive: no DST jumps
        if stamp[0] is None and self.last is not None and seconds < self.last - 86400:
            self.years += 1   # Dec 31 -> Jan 1 without a year in the log
            return self(stamp)
        self.last = seconds
        return seconds


def _new_run(t0=None):
    return {"train": [], "test": [], "snapshots": [], "resumed_from": None, "first_iter": None, "t0": t0}


def _parse_runs(lines):
    """Split a log into `caffe train` runs and collect each run's rows (seconds from its start)."""
    clock, runs = _Clock(), [_new_run()]
    t = last = train_row = test_row = None
    test_net = 0
    for line in lines:
        rec = classify(line)
        if rec.stamp is not None:
            t = clock(rec.stamp)
        run = runs[-1]
        if rec.kind in (Kind.START, Kind.SOLVER):
            if run["first_iter"] is not None:
                runs.append(_new_run(t))
                last = train_row = test_row = None
            elif rec.kind == Kind.START:   # nothing trained since the last start (a failed attempt): restart
                runs[-1] = _new_run(t)
            continue
        if run["t0"] is None:
            run["t0"] = t
        if rec.kind in (Kind.ITER, Kind.TESTING):
            n = rec.iter
            if last is not None and n < last:   # iterations went back: a new run without a header
                run = _new_run(t)
                runs.append(run)
            if run["first_iter"] is None:
                run["first_iter"] = n
            last = n
            secs = round(t - run["t0"], 6) if t is not None and run["t0"] is not None else None
            if rec.kind == Kind.ITER:
                train_row = {"iter": n, "seconds": secs, "lr": None, "loss": rec.value}
                run["train"].append(train_row)
                test_row = None
            else:
                test_net = rec.net
                if not (test_row and test_row["iter"] == n):   # test nets #1.. share the row
                    test_row = {"iter": n, "seconds": secs}
                    run["test"].append(test_row)
        elif rec.kind == Kind.LR:
            if train_row is not None and train_row["iter"] == rec.iter:
                train_row["lr"] = rec.value
        elif rec.kind == Kind.OUTPUT:
            if rec.phase == "Train" and train_row is not None:
                train_row[rec.name] = rec.value
            elif rec.phase == "Test" and test_row is not None:
                test_row[rec.name if test_net == 0 else "net%d_%s" % (test_net, rec.name)] = rec.value
        elif rec.kind == Kind.SNAPSHOT:
            n = rec.iter if rec.iter is not None else last
            if not (run["snapshots"] and run["snapshots"][-1]["iter"] == n):
                run["snapshots"].append({"iter": n, "caffemodel": None, "solverstate": None})
            run["snapshots"][-1]["solverstate" if rec.state else "caffemodel"] = rec.file
        elif rec.kind == Kind.RESTORE:
            run["resumed_from"] = rec.file
    return [r for r in runs if r["first_iter"] is not None]


def merge(parsed_list):
    """Combine parsed logs (e.g. a run and its resumed continuations) into one, by iteration."""
    runs = sorted((r for p in parsed_list for r in p["runs"]), key=lambda r: r["first_iter"])
    out = {"train": [], "test": [], "snapshots": [], "resumed_from": [], "runs": runs}
    offset = 0.0
    for run in runs:
        end = offset
        for key in ("train", "test"):
            # the later run re-did iterations >= its start: its numbers replace the earlier ones
            out[key] = [row for row in out[key] if row["iter"] < run["first_iter"]]
            for row in run[key]:
                row = dict(row)
                if row["seconds"] is not None:
                    row["seconds"] = round(row["seconds"] + offset, 6)
                    end = max(end, row["seconds"])
                out[key].append(row)
        offset = end
        if run["first_iter"] > 0:
            out["resumed_from"].append({"iter": run["first_iter"], "file": run["resumed_from"]})
        out["snapshots"] += [s for s in run["snapshots"] if s not in out["snapshots"]]
    for key in ("train", "test"):
        out[key].sort(key=lambda row: row["iter"])   # stable: order within an iteration is kept
    return out


def parse_log(path_or_lines):
    """Parse one Caffe log: a path, the log's text, or an iterable of lines."""
    if isinstance(path_or_lines, (str, os.PathLike)) and "\n" not in str(path_or_lines):
        with open(path_or_lines, encoding="utf-8", errors="replace") as f:
            return merge([{"runs": _parse_runs(f)}])
    if isinstance(path_or_lines, str):
        path_or_lines = path_or_lines.splitlines()
    return merge([{"runs": _parse_runs(path_or_lines)}])


def columns(rows, first=()):
    """Keys of rows in order of first appearance, after the given first ones."""
    cols = list(first)
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def write_csv(parsed, prefix):
    """Write PREFIX.train.csv and PREFIX.test.csv (empty cells for missing values); return the paths."""
    paths = []
    for key, first in (("train", ("iter", "seconds", "lr")), ("test", ("iter", "seconds"))):
        rows, path = parsed[key], "%s.%s.csv" % (prefix, key)
        cols = columns(rows, first)
        with files.writing(path) as tmp, open(tmp, "w", newline="") as f:   # whole or not at all
            w = csv.writer(f)
            w.writerow(cols)
            for row in rows:
                w.writerow(["" if row.get(c) is None else row[c] for c in cols])
        paths.append(path)
    return paths


def plot(parsed, png_path, title=None):
    """PNG: train/test loss against iteration (log y), and test PSNR (dB) below when logged."""
    from matplotlib.figure import Figure   # Agg canvas, no pyplot: works without a display

    def series(rows, key):
        pts = [(r["iter"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    test_cols = columns(parsed["test"], ())
    psnr_keys = [k for k in test_cols if "psnr" in k.lower()]
    fig = Figure(figsize=(8, 7 if psnr_keys else 4.5), dpi=100)
    axes = fig.subplots(2 if psnr_keys else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(*series(parsed["train"], "loss"), lw=1, label="train loss")
    for k in test_cols:
        if "loss" in k.lower():
            ax.plot(*series(parsed["test"], k), "o-", ms=3, lw=1, label="test " + k)
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    for k in psnr_keys:
        its, dbs = series(parsed["test"], k)
        axes[1].plot(its, dbs, "o-", ms=3, lw=1, color="C2", label="test " + k + " (test-set patches)")
        axes[1].set_ylabel("PSNR (dB)")
        if len(dbs) > 4:   # the untrained first tests (a few dB) would flatten the curve that matters
            low = sorted(dbs)[len(dbs) // 20] - 1.0
            axes[1].set_ylim(low, max(dbs) + 0.5)
    for ax in axes:
        for r in parsed["resumed_from"]:
            ax.axvline(r["iter"], color="grey", ls=":", lw=1)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("iteration" + ("  (dotted: resumed)" if parsed["resumed_from"] else ""))
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    files.save_figure(fig, png_path)
    return png_path


def _duration(seconds):
    s = int(round(seconds))
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%dh%02dm" % (s // 3600, s % 3600 // 60)


def _rate(r):
    return "%.1f" % r if r >= 1 else "%.2g" % r


class Progress:
    """Status of a running `caffe train`, fed one log line at a time.

    Prints one line per display interval ('Iteration N ..., loss = x'), e.g.
        iter  1200/40000  loss 0.004123  21.3 it/s  ETA 30m21s  test PSNR 31.02 dB
    Speed is wall time between Iteration lines (glog timestamps; arrival time for lines
    without one), smoothed, so the ETA includes test phases and snapshots. On a TTY the line
    is rewritten in place; glog errors (E/F lines) are passed through.
    """
    SMOOTH = 0.3   # weight of the newest display interval in the seconds-per-iteration average

    def __init__(self, max_iter=None, start_iter=0, stream=None, test_name="test"):
        self.max_iter, self.start_iter, self.test_name = max_iter, start_iter, test_name
        self.auto_max = max_iter is None   # then take max_iter from the solver parameters Caffe prints
        self.stream = stream if stream is not None else sys.stdout
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.clock, self.width = _Clock(), 0
        self.iter = self.loss = self.spi = self.psnr = self.test_loss = None
        self.first = self.last = None   # (iter, time, has_glog_time) of the first / latest Iteration line
        self.test_net = 0
        self.snapshot_iter = None       # the iteration of the latest snapshot Caffe wrote
        self.done = self.early = False  # "Optimization Done." / "Optimization stopped early." seen
        self.show_fatal = True          # pass Caffe's F lines and stack trace through

    def feed(self, line):
        """Take one log line (and print what it changes); returns its Line record."""
        line = line.rstrip("\r\n")
        rec = classify(line)
        if rec.severity == "E" or self.show_fatal and (rec.severity == "F" or rec.kind == Kind.TRACE):
            self._emit(line, status=False)
        if rec.kind == Kind.MAX_ITER:
            if self.auto_max:
                self.max_iter = rec.iter
        elif rec.kind == Kind.STOPPED:
            self.early = True
        elif rec.kind == Kind.DONE:
            self.done = True
        elif rec.kind == Kind.SNAPSHOT:
            if rec.iter is not None:
                self.snapshot_iter = rec.iter
        elif rec.kind == Kind.TESTING:
            self.test_net = rec.net
        elif rec.kind == Kind.OUTPUT:
            if rec.phase == "Test" and self.test_net == 0:
                if "psnr" in rec.name.lower():
                    self.psnr = rec.value
                elif "loss" in rec.name.lower():
                    self.test_loss = rec.value
        elif rec.kind == Kind.ITER:
            self._iteration(rec)
        return rec

    def _iteration(self, rec):
        t = self.clock(rec.stamp) if rec.stamp is not None else None
        now = (rec.iter, t if t is not None else time.monotonic(), t is not None)
        if self.last and now[2] == self.last[2] and now[0] > self.last[0] and now[1] > self.last[1]:
            spi = (now[1] - self.last[1]) / (now[0] - self.last[0])
            self.spi = spi if self.spi is None else self.SMOOTH * spi + (1 - self.SMOOTH) * self.spi
        self.first, self.last = self.first or now, now
        self.iter, self.loss = now[0], rec.value
        self._emit(self.status(), status=True)

    def status(self):
        """The current one-line status ('' before the first Iteration line)."""
        if self.iter is None:
            return ""
        parts = ["iter %*d/%d" % (len(str(self.max_iter)), self.iter, self.max_iter)
                 if self.max_iter else "iter %d" % self.iter,
                 "loss %.4g" % self.loss if self.loss is not None else "loss ?"]
        if self.spi:
            left = max(0, self.max_iter - self.iter) * self.spi if self.max_iter else None
            parts += ["%s it/s" % _rate(1 / self.spi), "ETA " + (_duration(left) if left is not None else "?")]
        else:
            parts += ["-- it/s", "ETA --"]
        if self.psnr is not None:
            parts.append("%s PSNR %.2f dB" % (self.test_name, self.psnr))
        elif self.test_loss is not None:
            parts.append("%s loss %.4g" % (self.test_name, self.test_loss))
        return "  ".join(parts)

    @property
    def end_iter(self):
        """The last iteration reached: the latest Iteration line, or a later snapshot (the final
        iteration is logged only when it is a multiple of the display interval)."""
        known = [i for i in (self.iter, self.snapshot_iter) if i is not None]
        return max(known) if known else None

    @property
    def finished(self):
        """Caffe reached max_iter: it said "Optimization Done." without stopping early (a log
        without those lines: the last iteration seen is max_iter)."""
        if self.done or self.early:
            return self.done and not self.early
        return self.end_iter is not None and (self.max_iter is None or self.end_iter >= self.max_iter)

    def summary(self):
        """Print and return a one-line account of the run (call when the log ends)."""
        if self.end_iter is None:
            text = "no Caffe training iterations seen"
        else:
            first = self.start_iter or (self.first[0] if self.first else self.end_iter)
            text = "%s: iter %d -> %d%s" % ("finished" if self.finished else "stopped", first, self.end_iter,
                                            "/%d" % self.max_iter if self.max_iter else "")
            if self.first:
                (i0, t0, g0), (i1, t1, g1) = self.first, self.last
                if g0 == g1 and i1 > i0 and t1 > t0:
                    text += " in %s (%s it/s)" % (_duration(t1 - t0), _rate((i1 - i0) / (t1 - t0)))
            if self.loss is not None:
                text += ", loss %.4g" % self.loss
            if self.psnr is not None:
                text += ", %s PSNR %.2f dB" % (self.test_name, self.psnr)
            elif self.test_loss is not None:
                text += ", %s loss %.4g" % (self.test_name, self.test_loss)
        self._emit(text, status=False)
        return text

    def _emit(self, text, status):
        if self.tty and status:   # rewrite the status line in place
            self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
            self.width = len(text)
        else:
            if self.width:        # keep the last status line, start a new one
                self.stream.write("\n")
                self.width = 0
            self.stream.write(text + "\n")
        self.stream.flush()


def follow(proc_stderr_lines, log_file, progress):
    """Tee a running `caffe train`: append every raw line to log_file (a path, opened in append
    mode, or an open file), flushed so the log is complete if we are killed, and feed progress.

    A log that can no longer be written (a full disk, a folder made read-only) does not stop the
    tee: Caffe's lines still reach progress; the first OSError is returned (None when all went in)."""
    f = open(log_file, "ab") if isinstance(log_file, (str, os.PathLike)) else log_file
    binary = not isinstance(f, io.TextIOBase)
    error = None
    try:
        for line in proc_stderr_lines:
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            if error is None:
                try:
                    f.write((line if isinstance(line, bytes) else line.encode("utf-8")) if binary else text)
                    f.flush()
                except OSError as exc:
                    error = exc
            if progress is not None:
                progress.feed(text)
    finally:
        if f is not log_file:
            try:
                f.close()
            except OSError as exc:
                error = error or exc
    return error


def main(argv=None):
    p = ArgumentParser(
        prog="python -m srcaffe.caffelog",
        description="Tee a running `caffe train`: append its output to a log file and print progress.",
        epilog="example:\n  caffe train -solver solver.prototxt 2>&1 | "
               "python -m srcaffe.caffelog --log run/train.log --max-iter 40000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", required=True, metavar="FILE", help="log file, appended to (never truncated)")
    p.add_argument("--max-iter", type=int, metavar="N", help="last iteration, for the ETA "
                   "(default: the max_iter Caffe prints)")
    p.add_argument("--start-iter", type=int, default=0, metavar="K", help="first iteration of this run (resumed)")
    p.add_argument("--test-name", default="test", metavar="NAME", help="label of the test PSNR (e.g. Set5)")
    args = p.parse_args(argv)
    folder = os.path.dirname(os.path.abspath(args.log))
    if not os.path.isdir(folder):
        raise UserError("--log %s: folder %s does not exist" % (args.log, folder))
    if not sys.stdin.isatty():
        # Ctrl-C reaches caffe too: keep logging its stop/snapshot lines until it closes the pipe
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    progress = Progress(args.max_iter, args.start_iter, sys.stdout, args.test_name)
    try:
        error = follow(sys.stdin.buffer, args.log, progress)
    except OSError as exc:
        raise UserError("--log %s: %s" % (args.log, exc.strerror or exc))
    progress.summary()
    if error is not None:   # Caffe's lines went on to the progress, not into the log
        raise UserError("%s: the log misses Caffe's lines from there on" % files.describe_os_error(args.log, error))
    return 0


if __name__ == "__main__":
    run_main(main)
