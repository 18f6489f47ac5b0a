"""fairseq-layerdrop-plot: draw several sweeps (sweep.json files) on one figure.

    fairseq-layerdrop-plot sweeps/*/sweep.json -o results/lm.png --title "kernel-doc LM"
    fairseq-layerdrop-plot sweeps/*/sweep.json -o lm.png --quality-only --ymax 400
"""
import sys

from fairseq_layerdrop import plotting
from fairseq_layerdrop.cli import boundary
from fairseq_layerdrop.cli.boundary import OneLineParser, positive_float
from fairseq_layerdrop.errors import show
from fairseq_layerdrop.result_files import read_sweep

PROG = "fairseq-layerdrop-plot"


def main(argv=None) -> int:
    """Bad input is one line and exit 2, a signal 128 + N (``cli/boundary.py``, as for every tool)."""
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", help="sweep.json files written by fairseq-layerdrop-sweep")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None, help="title of the figure (wrapped to its width)")
    p.add_argument("--quality-only", action="store_true",
                   help="leave out the speed panel (speeds measured beside other work do not compare)")
    p.add_argument("--ymax", type=positive_float, default=None,
                   help="cap the quality axis here (linear scale); points above it are marked and labelled")
    args = p.parse_args(argv)
    return boundary.run(PROG, lambda: plot(args), expected=(ValueError,))


def plot(args) -> None:
    if not plotting.available():
        raise ValueError("matplotlib is not installed (pip install matplotlib)")
    rows = []
    for path in args.sweeps:
        try:
            rows += read_sweep(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"{show(path)}: not a readable sweep.json ({type(err).__name__}: {err})") from None
    plotting.plot_sweeps(rows, args.output, args.title, speed=not args.quality_only, ymax=args.ymax)
    print(f"{PROG}: wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
