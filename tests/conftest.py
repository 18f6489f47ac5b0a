"""Toy data sets shared by every end-to-end test of a run (built once, never written to)."""
import signal

import pytest
import torch

from tests.utils import make_lm_data, make_translation_data

# one thread per test process: `make test` runs two workers on two cores
torch.set_num_threads(1)

# A suite started in the background of a non-interactive shell (`make test &`) inherits an ignored
# SIGINT, which the tools rightly leave ignored; the tests of Ctrl-C need it delivered, as from a
# terminal (children started by the tests then get the default handling back at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mt_data(tmp_path_factory):
    """Binarized toy translation data (reverse a sequence), joined dictionary."""
    return make_translation_data(tmp_path_factory.mktemp("mt"))


@pytest.fixture(scope="session")
def lm_data(tmp_path_factory):
    """Binarized toy monolingual data."""
    return make_lm_data(tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="session")
def data(mt_data, lm_data):
    return {"mt": mt_data, "lm": lm_data}
