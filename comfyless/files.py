"""File helpers every layer may use: atomic writes (temp file + rename), the checks that keep
workflow-given names inside their folder, and counter naming for new files.

A bottom module: it imports nothing of ours, so models/, lora/, engine/ and nodes/ can all
use it without import-layer violations. Refusals raise `UnsafePath` (a ValueError carrying
node_id / input_name); the engine (RunContext, BasePaths, validation) turns it into the
hierarchy's InvalidValue, so users see the same errors as before.
"""

from __future__ import annotations

import os
import re
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


# -- names given by workflows --------------------------------------------------------------
class UnsafePath(ValueError):
    """A name or path that would lead outside its folder; `node_id`/`input_name` say whose."""

    def __init__(self, message: str, *, node_id: str | None = None,
                 input_name: str | None = None) -> None:
        super().__init__(message)
        self.node_id, self.input_name = node_id, input_name


def check_relative_name(name: str, *, node_id: str | None = None,
                        input_name: str | None = None) -> None:
    """Refuse absolute names and `..` parts: a workflow may not point outside its folders."""
    path = Path(name)
    if not name or path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts \
            or "\\.." in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(
            f"path {name!r} must be a name relative to its folder (no '..', not absolute)",
            node_id=node_id, input_name=input_name,
        )


def ensure_inside(path: Path, folder: Path, *, node_id: str | None = None,
                  input_name: str | None = None) -> None:
    """Refuse a path that resolves (through symlinks) outside `folder`. For writes only:
    reading follows links wherever they point."""
    real, root = path.resolve(), folder.resolve()
    if real != root and root not in real.parents:
        raise UnsafePath(
            f"path {str(path)!r} resolves to {str(real)!r}, outside {str(root)!r}; files are "
            f"only written inside that folder, never through a link out of it",
            node_id=node_id, input_name=input_name,
        )


def check_write_target(root: Path, name: str, *, node_id: str | None = None,
                       input_name: str | None = None) -> Path:
    """`root / name` for a file or folder about to be written; nothing is created.

    Refused (UnsafePath): an absolute name, a `..` part, and any existing part of the path
    (a sub-folder, or a link, dangling or not) that resolves outside `root`, e.g. a prefix
    `loras/x` when output/loras is a link to another disk. `root` itself may be a link (an
    output folder kept elsewhere): the check is against where it resolves.
    """
    check_relative_name(name, node_id=node_id, input_name=input_name)
    current = root
    for part in Path(name).parts:
        current = current / part
        if not (current.is_symlink() or current.exists()):
            break  # nothing below a missing part exists yet: mkdir will create real folders
        ensure_inside(current, root, node_id=node_id, input_name=input_name)
    return root / name


def next_counter(folder: Path, base: str, tail: str, *, gap: str = "_") -> int:
    """1 + the highest `<n>` of the files `<base>_<n>_<tail>` in `folder` (1 when none).

    `tail` is a regular expression for what follows the number's `_` (`re.escape(ext)` for
    one file per number, `\\d+\\.png` for a numbered series), so a new number never reuses
    one in use and an earlier file is never overwritten. `gap`: the literal text between the
    number and `tail` (`""` for names like SaveImageAdvanced's `<base>_<n>.png`)."""
    pattern = re.compile(re.escape(base) + r"_(\d+)" + re.escape(gap) + tail + "$")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(used, default=0) + 1
