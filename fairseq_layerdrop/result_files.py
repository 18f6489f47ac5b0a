"""Result files (JSON, CSV, tables) written all or nothing.

A run stopped or failing in the middle of a write must not leave a truncated ``sweep.json`` that
a later step (a table, a plot, a queue that skips finished work) takes for a result. Text goes to
a temporary file beside the target, which then gets the target's name in one rename (atomic on
POSIX): a reader sees the old file or the new one, never a part. The temporary file is removed on
every way out the process survives. Checkpoints have their own, stricter writer (``output_file.py``).
"""
import json
import os
import tempfile
from pathlib import Path


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing it all at once; ``OSError`` leaves ``path`` as it was."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # what a plain open() would give under the usual umask, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def write_json(path, obj, indent: int = 1) -> None:
    """``obj`` as JSON (one trailing newline) to ``path``, all or nothing."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")
