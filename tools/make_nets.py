#!/usr/bin/env python3
"""Write the prototxt and solver files of every model and scale (pycaffe's net_spec).

Generated, never edited by hand: prototxt/<model>_x<scale>_{train_test,deploy}.prototxt (and
for FSRCNN x2/x4 _deconv_train_test.prototxt: only the deconvolution learns),
solvers/<model>_x<scale>_{sgd,adam}.prototxt, and prototxt/official/ (the authors' released
models with their replicate padding, see srcaffe/official/). The train/test nets read the HDF5 lists that
tools/prepare_data.py writes (paths relative to the repository root, like the authors'
examples/FSRCNN/train.txt), so `caffe train --solver solvers/fsrcnn_x3_sgd.prototxt` from the
repository root works once the data is prepared; ./run_train.sh does all of that for you.

  python tools/make_nets.py            # (re)write every file
  python tools/make_nets.py --check    # exit 1 and name the files that are out of date
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srcaffe.venv import reexec_in_venv; reexec_in_venv()  # noqa: E402,E702 (the project's venv)
from srcaffe import ROOT, cli, paths  # noqa: E402
from srcaffe.cli import run_main  # noqa: E402


def generated_files():
    """{path: text} of every generated file."""
    from srcaffe import hdf5_patches, nets, official, runs, solvers
    files = {}
    for model in nets.MODELS:
        for scale in nets.SCALES:
            g = nets.geometry(model, scale)
            folder = os.path.relpath(hdf5_patches.data_dir(model, scale, runs.default_augment(model)),
                                     paths.data_root())
            train_test = nets.train_test_net(model, scale, "data/%s/train.txt" % folder,
                                             "data/%s/test.txt" % folder, g.label_size)
            files[paths.net_file(model, scale, "train_test")] = train_test
            if model.startswith("fsrcnn") and scale != 3:   # x2/x4 from x3: fine-tune the deconvolution
                files[paths.net_file(model, scale, "deconv_train_test")] = nets.train_test_net(
                    model, scale, "data/%s/train.txt" % folder, "data/%s/test.txt" % folder, g.label_size,
                    frozen=True)
            if runs.default_init(model, "adam") == "he":   # SRCNN under Adam starts from He's fillers
                files[paths.net_file(model, scale, "he_train_test")] = nets.train_test_net(
                    model, scale, "data/%s/train.txt" % folder, "data/%s/test.txt" % folder, g.label_size, init="he")
            files[paths.net_file(model, scale, "deploy")] = nets.deploy_net(model, scale)
            for solver in solvers.SOLVERS:
                kind = "he_train_test" if runs.default_init(model, solver) == "he" else "train_test"
                files[paths.solver_file(model, scale, solver)] = solvers.solver_text(
                    model, scale, solver, os.path.relpath(paths.net_file(model, scale, kind), ROOT),
                    hdf5_patches.TEST_PATCHES)
    files.update(official.generated_files())   # deploy nets of the authors' released models
    return files


def main(argv=None):
    parser = cli.ArgumentParser(prog="tools/make_nets.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file differs")
    args = parser.parse_args(argv)
    paths.unset_env("SRCAFFE_DATA")   # committed files always name the repository's data/
    stale = []
    for path, text in sorted(generated_files().items()):
        current = open(path).read() if os.path.exists(path) else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    rel = [os.path.relpath(p, ROOT) for p in stale]
    if args.check:
        if rel:
            print("out of date (run tools/make_nets.py): " + " ".join(rel))
            return 1
        print("all generated prototxt and solvers are up to date")
        return 0
    print("wrote %d file(s)%s" % (len(rel), (": " + " ".join(rel)) if rel else " (all up to date)"))
    return 0


if __name__ == "__main__":
    run_main(main)
