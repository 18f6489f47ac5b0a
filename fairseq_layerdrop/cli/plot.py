"""fairseq-layerdrop-plot: draw several sweeps (sweep.json files) on one figure.

    fairseq-layerdrop-plot sweeps/*/sweep.json -o results/lm.png --title "kernel-doc LM"
    fairseq-layerdrop-plot sweeps/*/sweep.json -o lm.png --quality-only --ymax 400
"""
import sys

from fairseq_layerdrop import plotting
from fairseq_layerdrop.cli.boundary import OneLineParser, positive_float
from fairseq_layerdrop.errors import one_line, show
from fairseq_layerdrop.result_files import read_sweep

PROG = "fairseq-layerdrop-plot"


def _error(message: str) -> int:
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="+", help="sweep.json files written by fairseq-layerdrop-sweep")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None, help="title of the figure (wrapped to its width)")
    p.add_argument("--quality-only", action="store_true",
                   help="leave out the speed panel (speeds measured beside other work do not compare)")
    p.add_argument("--ymax", type=positive_float, default=None,
                   help="cap the quality axis here (linear scale); points above it are marked and labelled")
    args = p.parse_args(argv)
    if not plotting.available():
        return _error("matplotlib is not installed (pip install matplotlib)")
    rows = []
    for path in args.sweeps:
        try:
            rows += read_sweep(path)
        except (OSError, ValueError) as err:
            return _error(f"{show(path)}: not a readable sweep.json ({type(err).__name__}: {err})")
    try:
        plotting.plot_sweeps(rows, args.output, args.title, speed=not args.quality_only, ymax=args.ymax)
    except (OSError, ValueError) as err:
        return _error(f"{type(err).__name__}: {err}")
    print(f"{PROG}: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
