"""Old name of :mod:`tests.utils` (the test helpers now live in one module); kept importable."""
from tests.utils import (  # noqa: F401
    EVAL_COMMON,
    FAMILY_ARGS,
    PLUGIN_DIR,
    hypotheses,
    make_lm_data,
    make_translation_data,
    run_cli,
    run_stock,
    to_argparse_era,
    train,
)
