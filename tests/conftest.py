"""Toy data sets shared by every end-to-end test of a run (built once, never written to)."""
import pytest
import torch

from tests.utils import make_lm_data, make_translation_data

# one thread per test process: `make test` runs two workers on two cores
torch.set_num_threads(1)


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
