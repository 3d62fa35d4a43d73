"""BoTorch's fused qLogNEHVI kernel: off unless asked for, and never a silent wait on a stale lock.

BoTorch 0.18 compiles a C++ kernel (``logei_fused_ext``) the first time a qLogNEHVI is built, through
``torch.utils.cpp_extension.load`` with ``-march=native``, under a lock file in torch's extension
folder. A process killed while compiling leaves the lock behind, and every later process then waits
for it forever at 0% CPU (torch's ``FileBaton`` polls for the file to go, without a time limit).
A compiler run on a user's machine, tied to the CPU it happened to run on, buys cato little: the
pure-torch path is BoTorch's own fallback and computes the same values, and an acquisition
evaluation is a small part of a BO iteration (docs/reliability.md has the measurement).

So cato tells BoTorch its kernel load was already attempted, and BoTorch takes the pure-torch path.
``CATO_BOTORCH_FUSED=1`` lets BoTorch load or compile its kernel; a lock found then is named in an
error instead of waited on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Set to 1 to let BoTorch load (or compile) its fused C++ qLogNEHVI kernel.
ENV_FUSED = "CATO_BOTORCH_FUSED"
EXTENSION = "logei_fused_ext"


class KernelLockError(RuntimeError):
    """A lock file of BoTorch's kernel build is in the way."""


def extension_lock() -> Path:
    """Where torch's ``cpp_extension`` keeps the build lock of BoTorch's kernel."""
    try:
        from torch.utils.cpp_extension import _get_build_directory
        return Path(_get_build_directory(EXTENSION, False)) / "lock"
    except Exception:  # a private torch helper: fall back to its layout
        import torch
        if os.environ.get("TORCH_EXTENSIONS_DIR"):
            return Path(os.environ["TORCH_EXTENSIONS_DIR"]) / EXTENSION / "lock"
        tag = f"py{sys.version_info[0]}{sys.version_info[1]}_{'cu' if torch.version.cuda else 'cpu'}"
        return Path.home() / ".cache" / "torch_extensions" / tag / EXTENSION / "lock"


def fused_wanted() -> bool:
    return os.environ.get(ENV_FUSED, "").strip().lower() in ("1", "true", "yes")


def prepare_botorch_kernel() -> bool:
    """Call before building a qLogNEHVI. Returns whether BoTorch may use its fused kernel.

    Raises :class:`KernelLockError` naming the lock file when the kernel is wanted and a lock of an
    earlier build is present (an unfinished build, or a stale one left by a killed process).
    """
    from botorch.acquisition.multi_objective import logei

    loaded = getattr(logei, "_C", None) is not None
    if not fused_wanted():
        if not loaded:
            logei._load_attempted = True  # BoTorch then takes its pure-torch path
        return loaded
    if not loaded and not getattr(logei, "_load_attempted", False):
        lock = extension_lock()
        if lock.exists():
            raise KernelLockError(
                f"{ENV_FUSED}=1 but BoTorch's kernel build is locked by {lock}: another process is "
                f"compiling it, or one was killed while compiling. If no such process runs, remove "
                f"{lock}; or unset {ENV_FUSED} to use the pure-torch path")
    return True
