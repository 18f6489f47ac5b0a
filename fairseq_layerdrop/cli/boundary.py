"""The command-line boundary of the tools: one line per failure, exit statuses, signals.

:func:`run` calls the tool's work and turns every way out into an exit status:

* 0: done;
* 2: anything the input, the options or the environment caused (:class:`CheckpointError`,
  :class:`PruneError`, ``OSError`` such as a full disk, ``MemoryError``), one line
  ``<tool>: error: ...``;
* 1: an exception our code did not expect (a bug of ours), still one line;
* 128 + N after signal N: SIGINT (130), SIGHUP (129) and SIGTERM (143) raise :class:`Interrupted`
  in the main thread, so temporary files are removed on the way out; SIGBUS (135: the mapped
  input was truncated by another process) cannot return to Python, so a C-level handler removes
  the named temporary files of :mod:`~fairseq_layerdrop.output_file`, writes the line and exits.
  A signal already ignored (SIGHUP under ``nohup``) stays ignored.

Python warnings are silenced inside, so that they cannot add lines. :class:`OneLineParser` and
the argparse types below give usage errors the same single line and exit status 2.
"""
import argparse
import contextlib
import ctypes
import os
import platform
import signal
import sys
import threading
import traceback
import warnings

from fairseq_layerdrop import output_file
from fairseq_layerdrop.errors import CheckpointError, PruneError, one_line, show

_TRAPPED = ("SIGINT", "SIGTERM", "SIGHUP")
_state = {"signal": None, "bus_line": b""}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line ``<prog>: error: ...`` and exit 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def _digits(text: str, least: int, expected: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {show(repr(text))}")
    return int(text)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 written in ASCII digits."""
    return _digits(text, 1, "a positive integer")


def whole_number(text: str) -> int:
    """argparse type: a whole number >= 0 written in ASCII digits."""
    return _digits(text, 0, "a whole number >= 0")


def _finite(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value if positive else 0 <= value) or value == float("inf"):  # nan fails both
        raise argparse.ArgumentTypeError(f"expected a finite number {'>' if positive else '>='} 0, "
                                         f"got {show(repr(text))}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (``inf`` and ``nan`` are refused)."""
    return _finite(text, positive=False)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _finite(text, positive=True)


def int_list(text: str) -> list:
    """argparse type: comma-separated whole numbers >= 1 (``"2,4"`` -> ``[2, 4]``)."""
    try:
        return [positive_int(item.strip()) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {show(repr(text))}") from None


def choice_list(known, what: str):
    """argparse type: comma-separated names from ``known`` (``what`` names them in the error)."""
    def parse(text: str) -> list:
        names = [name.strip() for name in text.split(",")]
        bad = [name for name in names if name not in known]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {what} {show(repr(bad[0]))} (known: {', '.join(known)})")
        return names
    return parse


class Interrupted(BaseException):
    """Signal ``signum`` arrived; like KeyboardInterrupt, not an ``Exception``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    if _state["signal"] is None:  # later signals must not interrupt the cleanup of the first
        _state["signal"] = signum
        raise Interrupted(signum)


@contextlib.contextmanager
def _python_handlers():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for name in _TRAPPED:
        num = getattr(signal, name, None)
        if num is not None and signal.getsignal(num) is not signal.SIG_IGN:  # nohup: stays ignored
            saved[num] = signal.signal(num, _on_signal)
    _state["signal"] = None
    try:
        yield
    finally:
        for num, handler in saved.items():
            signal.signal(num, handler)


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on x86-64 and aarch64 Linux."""
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * (128 // ctypes.sizeof(ctypes.c_ulong))),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _on_bus(signum):
    """Runs inside the SIGBUS handler: nothing may return to the faulting code."""
    for dir_fd, name in list(output_file.LIVE_TEMPS):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass
    os.write(2, _state["bus_line"])
    os._exit(128 + signum)


_BUS_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int)(_on_bus)  # kept alive for the process


@contextlib.contextmanager
def _bus_handler(prog: str):
    libc = None
    if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64"):
        libc = ctypes.CDLL(None, use_errno=True)
    new, old = _SigAction(), _SigAction()
    new.handler = ctypes.cast(_BUS_CALLBACK, ctypes.c_void_p).value
    _state["bus_line"] = (f"{prog}: error: the input file changed while being read (truncated by another "
                          f"process?); nothing written\n").encode()
    if libc is None or libc.sigaction(signal.SIGBUS, ctypes.byref(new), ctypes.byref(old)) != 0:
        yield
        return
    try:
        yield
    finally:
        libc.sigaction(signal.SIGBUS, ctypes.byref(old), None)


def _fail(prog: str, message: str, status: int) -> int:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return status


def _failure(prog: str, err: BaseException, expected: tuple = ()) -> int:
    signum = _state["signal"]  # a library may have turned our Interrupted into its own error
    if signum is not None or isinstance(err, Interrupted):
        signum = signum or err.signum
        return _fail(prog, f"interrupted by {signal.Signals(signum).name}", 128 + signum)
    if isinstance(err, KeyboardInterrupt):
        return _fail(prog, "interrupted", 128 + signal.SIGINT)
    if isinstance(err, (CheckpointError, PruneError, *expected)):
        return _fail(prog, str(err), 2)
    if isinstance(err, (OSError, MemoryError)):
        return _fail(prog, f"{type(err).__name__}: {err}", 2)
    if os.environ.get("FAIRSEQ_LAYERDROP_TRACEBACK"):
        traceback.print_exception(err)
    return _fail(prog, f"internal error (a bug in {prog}; please report it with the command, or set "
                       f"FAIRSEQ_LAYERDROP_TRACEBACK=1 for details): {type(err).__name__}: {err}", 1)


def run(prog: str, work, expected: tuple = ()) -> int:
    """``work()`` (which prints its own result) under the rules above; returns the exit status.

    ``expected``: more exception types a tool raises for bad input (exit 2, their one-line message)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _python_handlers(), _bus_handler(prog):
            try:
                work()
                return 0
            except (Exception, Interrupted, KeyboardInterrupt) as err:
                return _failure(prog, err, expected)
