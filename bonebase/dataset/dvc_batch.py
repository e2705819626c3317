"""Run several DVC commands in one process: ``python -m bonebase.dataset.dvc_batch JSON``.

JSON is a list of argument lists (``[["add", "data/x"], ["push", "data/x.dvc"]]``), run in
order through ``dvc.cli.main`` (DVC's own command line, which its test suite also calls in
process) until one fails. Starting DVC costs about a second of imports and repository set-up per
process, as much as adding and pushing a few hundred images, so a version's remove/add/push share
one process. On failure DVC's own ``ERROR:`` line stays the last one, for the caller's error message.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from dvc.cli import main as dvc_main

    for args in json.loads(argv[0]):
        code = dvc_main([str(a) for a in args])
        if code:
            print(f"(`dvc {' '.join(args[:2])} …` exited with {code})", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
