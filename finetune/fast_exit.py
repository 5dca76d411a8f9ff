"""End a command-line process without tearing the interpreter down: ``exit_now(code)``.

Why: at a normal exit Python finalises every module and the C++ runtime runs the static destructors
of torch's libraries, which pages in library code and data never touched during the run. With torch
2.14 (CUDA build, on a CPU machine) ``import torch`` alone peaks at 674 MB resident until the exit and
at 820 MB during it (``/usr/bin/time``; ``os._exit`` after ``import torch``: 674 MB), so a training
run's reported peak RSS was its real peak plus ~145 MB spent on shutting down. ``exit_now`` runs the
``atexit`` handlers (logging, trackers, multiprocessing clean-up), flushes stdout and stderr, and
leaves with ``os._exit``. Only entry points call it (``python -m geotune``, ``geotune``, ``train.py``),
never library code or tests, which go on running after a command returns.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def exit_now(code: int | None) -> NoReturn:
    """Run the atexit handlers, flush stdio, and exit with ``code`` (None: 0) without teardown."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing left to save
            pass
    os._exit(int(code or 0))
