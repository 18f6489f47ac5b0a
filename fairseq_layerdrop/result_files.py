"""Result files (JSON, CSV, tables, figures) written all or nothing; sweep.json read back checked.

A run stopped or failing in the middle of a write must not leave a truncated ``sweep.json`` that
a later step (a table, a plot, a queue that skips finished work) takes for a result. Text goes to
a temporary file beside the target, which then gets the target's name in one rename (atomic on
POSIX): a reader sees the old file or the new one, never a part. The temporary file is removed on
every way out the process survives. Checkpoints have their own, stricter writer (``output_file.py``).
"""
import json
import math
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, List, Optional


def write_file(path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a binary file that then replaces ``path`` all at once (e.g. a figure's
    ``savefig``); an error (``OSError`` or ``write``'s own) leaves ``path`` as it was."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # what a plain open() would give under the usual umask, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing it all at once; ``OSError`` leaves ``path`` as it was."""
    write_file(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path, obj, indent: int = 1) -> None:
    """``obj`` as JSON (one trailing newline) to ``path``, all or nothing."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


MAX_SWEEP_BYTES = 4 << 20  # a sweep.json of this project is a few kB: 24 depths x 2 stacks of rows
MAX_SWEEP_ROWS = 1000


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def check_rows(rows, metric: Optional[str] = None) -> List[dict]:
    """``rows`` if it is a list of at most :data:`MAX_SWEEP_ROWS` objects, each with a text
    ``label``, an integer ``depth`` >= 1 and, for ``metric``, a finite number or nothing; else
    ``ValueError`` naming the first row that is not."""
    if not isinstance(rows, list):
        raise ValueError("'rows' is not a list")
    if len(rows) > MAX_SWEEP_ROWS:
        raise ValueError(f"{len(rows)} rows, more than the {MAX_SWEEP_ROWS} a sweep has")
    for i, row in enumerate(rows):
        depth = row.get("depth") if isinstance(row, dict) else None
        if not (isinstance(row, dict) and isinstance(row.get("label"), str)
                and isinstance(depth, int) and not isinstance(depth, bool) and depth >= 1):
            raise ValueError(f"row {i} needs a text 'label' and an integer 'depth' >= 1")
        value = row.get(metric) if metric else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ValueError(f"row {i}: {metric} is not a finite number")
    return rows


def read_sweep(path, metric: Optional[str] = None) -> List[dict]:
    """The rows of a sweep.json (``fairseq-layerdrop-sweep``'s output), checked by :func:`check_rows`;
    ``ValueError`` (or ``OSError``) for anything else, a file over :data:`MAX_SWEEP_BYTES` included."""
    with open(path, "rb") as f:
        data = f.read(MAX_SWEEP_BYTES + 1)
    if len(data) > MAX_SWEEP_BYTES:
        raise ValueError(f"larger than the {MAX_SWEEP_BYTES >> 20} MiB a sweep.json can be")
    try:
        sweep = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"not JSON text ({type(err).__name__})") from None
    if not isinstance(sweep, dict) or "rows" not in sweep:
        raise ValueError("not a sweep (no 'rows')")
    return check_rows(sweep["rows"], metric)
