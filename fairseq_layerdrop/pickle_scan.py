"""A pass over a pickle's opcodes before any unpickler sees it: bounded work for hostile files.

Unpicklers (Python's C one included) trust two things a hostile file controls: the memo index of
``PUT`` / ``BINPUT`` / ``LONG_BINPUT``, for which they grow their memo table to the index (a
5-byte opcode asking for index 2**27 costs gigabytes), and the number of objects (a few hundred
kilobytes of deflated one-byte ``EMPTY_SET`` opcodes become millions of sets). This pass walks the
opcodes with ``pickletools.genops`` (which builds nothing), without following them, and refuses:

* a memo index other than the next free one or one already used (``pickle`` numbers its memo
  entries 0, 1, 2, ... in order; torch.save pickles with it);
* more than :data:`MAX_OPCODES` opcodes: a fairseq checkpoint's object tree has tens of thousands.

Standard library only; errors are ``CheckpointError`` (one line).
"""
import pickletools

from fairseq_layerdrop.errors import CheckpointError, show

MAX_OPCODES = 1_000_000  # real fairseq checkpoints: tens of thousands
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def scan(f, where: str) -> None:
    """Walk the pickle at ``f``'s position up to its ``STOP``; ``f`` is left after it."""
    memo = 0  # entries so far: the next free index
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(f)):
            if count >= MAX_OPCODES:
                raise CheckpointError(f"{where}: refused: its pickle has more than {MAX_OPCODES:,} "
                                      f"opcodes (a fairseq checkpoint has far fewer)")
            if op.name in _PUTS:
                if not isinstance(arg, int) or not 0 <= arg <= memo:
                    raise CheckpointError(f"{where}: not a readable torch checkpoint (malformed pickle: "
                                          f"memo index out of order)")
                memo += arg == memo
            elif op.name == "MEMOIZE":
                memo += 1
    except CheckpointError:
        raise
    except Exception as err:  # genops raises ValueError and others on malformed input
        raise CheckpointError(f"{where}: not a readable torch checkpoint (malformed pickle: "
                              f"{show(type(err).__name__)}: {show(str(err))})") from None
