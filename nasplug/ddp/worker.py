"""``python -m nasplug.ddp.worker FOLDER``: one worker of a job (what torchrun starts N times).

It reads the process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
...), trains ``FOLDER/spec.json`` with checkpoints in ``FOLDER`` and resumes from the latest one
after a restart (``torchrun --max-restarts``). Rank 0 prints one line per epoch and writes
``result.json``. A divergence is a result (exit status 0); an exception exits non-zero, which
makes torchrun restart the group or give up.
"""

from __future__ import annotations

import argparse
import sys

from nasplug.ddp.jobs import run_folder
from nasplug.processes import die_with_parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nasplug.ddp.worker", description=__doc__)
    parser.add_argument("folder", help="the job folder (holding spec.json)")
    args = parser.parse_args(argv)
    die_with_parent()  # never outlive the torchrun agent that started this worker
    run_folder(args.folder, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
