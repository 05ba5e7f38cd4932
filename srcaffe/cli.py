"""Shared plumbing for tools/*.py: one-line errors and exit codes."""
import os
import sys

from .errors import UserError


def run_main(main, argv=None):
    """Run main(argv) and exit: 0 on success, 2 with 'error: ...' for UserError, 130 on Ctrl-C."""
    try:
        code = main(argv)
    except UserError as exc:
        print("error: %s" % exc, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # `tool | head`: the reader left; exit quietly (stdout is closed, so point it at devnull).
        sys.stdout = open(os.devnull, "w")
        sys.exit(1)
    sys.exit(code or 0)
