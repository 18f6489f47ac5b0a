"""Every shipped hydra config names registered components; the tiny one trains."""
import subprocess
import sys
from pathlib import Path

import pytest
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.tasks import TASK_REGISTRY
from omegaconf import OmegaConf

import fairseq_layerdrop
from tests.utils import PLUGIN_DIR, run_cli

fairseq_layerdrop.register()

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*/*.yaml"))


def test_configs_exist_for_each_family():
    assert {p.parent.name for p in CONFIGS} == {"translation", "lm", "summarization", "roberta"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_names_registered_components(path):
    cfg = OmegaConf.load(path)
    assert cfg.model._name in ARCH_MODEL_REGISTRY
    assert "layerdrop" in cfg.model._name
    assert cfg.criterion._name in CRITERION_REGISTRY
    assert cfg.task._name in TASK_REGISTRY


def test_tiny_translation_config_trains_with_hydra(mt_data, tmp_path):
    data = mt_data
    out = run_cli("fairseq-hydra-train", [
        "--config-dir", str(CONFIGS[0].parents[1] / "translation"), "--config-name", "tiny_demo",
        f"task.data={data}", "task.source_lang=src", "task.target_lang=tgt", f"common.user_dir={PLUGIN_DIR}",
        "optimization.max_update=3", f"checkpoint.save_dir={tmp_path / 'ckpt'}", f"hydra.run.dir={tmp_path / 'hydra'}",
    ])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ld_encoder_layers" in out.stdout + out.stderr
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_every_plugin_architecture_has_its_stock_name():
    """A missing entry in arch_names.py would silently write pruned files that need --user-dir."""
    from fairseq.models import MODEL_REGISTRY

    from fairseq_layerdrop.arch_names import STOCK_ARCH, STOCK_MODEL

    ours = sorted(name for name in ARCH_MODEL_REGISTRY if "_layerdrop" in name)
    assert ours and sorted(STOCK_ARCH) == ours
    for arch, stock in STOCK_ARCH.items():
        assert issubclass(ARCH_MODEL_REGISTRY[arch], ARCH_MODEL_REGISTRY[stock]), (arch, stock)
    models = sorted(name for name in MODEL_REGISTRY if "_layerdrop" in name)
    assert sorted(STOCK_MODEL) == models
    assert all(issubclass(MODEL_REGISTRY[m], MODEL_REGISTRY[s]) for m, s in STOCK_MODEL.items())


@pytest.mark.parametrize("first, expect", [("import fairseq; import fairseq_layerdrop", "True True"),
                                           ("import fairseq_layerdrop; import fairseq", "False True")])
def test_importing_registers_only_after_fairseq(first, expect):
    """--user-dir imports the package after fairseq: it registers; imported first, register() does."""
    code = (f"{first}; from fairseq.models import ARCH_MODEL_REGISTRY as R; a = 'transformer_lm_layerdrop' in R; "
            "fairseq_layerdrop.register(); print(a, 'transformer_lm_layerdrop' in R)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == expect.split()
