"""File helpers every layer may use: atomic writes (temp file + rename).

A bottom module: it imports nothing of ours, so models/, lora/, engine/ and nodes/ can all
use it without import-layer violations.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temp file beside `path`, then rename it into place.

    Nothing half-written is ever visible under `path`; on failure the temp file is removed.
    The file gets the mode any new file gets from the user's umask (0644 under umask 022), not
    mkstemp's private 0600: outputs are meant to be shared like files other tools write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        # The kernel applied the umask (and any default ACL) when it created the file: read
        # the result instead of the umask, whose only API (os.umask) changes it process-wide.
        mode = stat.S_IMODE(os.lstat(tmp).st_mode)
        write(tmp)
        os.chmod(tmp, mode)  # in case `write` replaced the file with one of another mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _new_temp(path: Path) -> Path:
    """A new empty file `.<name>.<random>.tmp` beside `path`, created with mode 0666 & ~umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")
