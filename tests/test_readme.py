"""README section 3 lists exactly the options, defaults, strategies and names the code defines;
section 5's file tree names every module and script, and only files that exist."""
import dataclasses
import os
import re
from pathlib import Path

import pytest
from fairseq.criterions import CRITERION_REGISTRY
from fairseq.models import ARCH_MODEL_REGISTRY

import fairseq_layerdrop
from fairseq_layerdrop import settings, speculative
from fairseq_layerdrop.cli import generate, prune
from fairseq_layerdrop.options import EarlyExitOptions, LayerDropOptions

fairseq_layerdrop.register()

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
OPTIONS = README.split("## 3. Options", 1)[1].split("## 4.", 1)[0]
FLAG = re.compile(r"--[a-z0-9][a-z0-9-]*")


def table_after(marker: str) -> list:
    """The rows (lists of cells) of the first table after ``marker`` in section 3."""
    lines = OPTIONS.split(marker, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:  # skip the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def check_flags(rows, parser_actions) -> None:
    """Every option of the parser is in the table, and every option a row is about exists."""
    ours = parser_flags(parser_actions)
    assert ours <= {flag for row in rows for flag in FLAG.findall(" ".join(row))}
    assert {flag for row in rows for flag in FLAG.findall(row[0])} <= ours


def parser_flags(actions) -> set:
    return {opt for action in actions for opt in action.option_strings if opt.startswith("--") and opt != "--help"}


TRAINING = table_after("Rates and keep lists use fairseq's own names")


def training_row(name: str) -> list:
    flag = "--" + name.replace("_", "-")
    rows = [row for row in TRAINING if re.match(rf"`{re.escape(flag)}[ `]", row[0])]
    assert len(rows) == 1, f"{flag}: {len(rows)} rows in README section 3"
    return rows[0]


PLUGIN_FIELDS = [f for options in (LayerDropOptions, EarlyExitOptions) for f in dataclasses.fields(options)
                 if f.name.startswith("layerdrop_")]  # not FairseqDataclass's own _name


@pytest.mark.parametrize("field", PLUGIN_FIELDS, ids=lambda f: f.name)
def test_every_training_option_is_listed_with_its_default(field):
    default = training_row(field.name)[1]
    if field.default is None:  # "default: --seed" style: the README names what the help names
        assert default.strip("`") in field.metadata["help"]
    elif field.default is False or field.default == "":
        assert default == "off"
    else:
        assert default == str(field.default)


@pytest.mark.parametrize("name, choices", [("layerdrop_schedule", settings.SCHEDULES),
                                           ("layerdrop_granularity", settings.GRANULARITIES)])
def test_training_choices_are_the_code_s(name, choices):
    listed = re.search(r"\{([a-z,]+)\}", training_row(name)[0]).group(1).split(",")
    assert listed == list(choices)


def test_training_table_lists_nothing_else():
    fairseq_own = {"--encoder-layerdrop", "--decoder-layerdrop", "--encoder-layers-to-keep", "--decoder-layers-to-keep"}
    ours = {"--" + f.name.replace("_", "-") for f in PLUGIN_FIELDS}
    listed = {flag for row in TRAINING for flag in FLAG.findall(row[0])}
    assert listed == ours | fairseq_own


PRUNE = table_after("Pruning (`fairseq-layerdrop-prune")


def test_prune_table_lists_exactly_the_prune_options():
    check_flags(PRUNE, prune.build_parser()._actions)


def test_prune_strategies_and_defaults_are_the_code_s():
    listed = [m.group(1) for row in PRUNE for m in [re.match(r"`--strategy ([a-z-]+)", row[0])] if m]
    assert listed == list(prune.STRATEGIES)
    defaults = {action.dest: action.default for action in prune.build_parser()._actions}
    text = " ".join(row[-1] for row in PRUNE)
    for name in ("max_batches", "max_tokens", "valid_subset"):
        shown = re.search(rf"`--{name.replace('_', '-')}`,? ([^\s,)]+)", text)
        assert shown and shown.group(1) == str(defaults[name]), name


GENERATE = table_after("Self-speculative greedy decoding")


def draft_group():
    parser = generate.build_parser()
    return next(g for g in parser._action_groups if g.title.startswith("self-speculative"))


def test_generate_table_lists_exactly_the_draft_options():
    check_flags(GENERATE, draft_group()._group_actions)


def test_generate_strategies_and_default_tokens_are_the_code_s():
    row = next(row for row in GENERATE if row[0].startswith("`--draft-strategy"))
    assert row[0].split(" ", 1)[1].rstrip("`").split("\\|") == list(speculative.STRATEGIES)
    default = next(a.default for a in draft_group()._group_actions if a.dest == "draft_tokens")
    tokens_row = next(row for row in GENERATE if row[0].startswith("`--draft-tokens"))
    assert f"(default {default})" in tokens_row[1]


def names_after(label: str) -> set:
    """Expand ``label`` (`a_layerdrop` (+ `_tiny`, ...), `b_layerdrop_x|_y`): the full names listed."""
    paragraph = OPTIONS.split(label, 1)[1].split("\n\n", 1)[0]
    paragraph = re.split(r"\n[A-Z][a-z]+: ", paragraph, 1)[0] if label.startswith("Arch") else paragraph
    names, stem = set(), None
    for token in re.findall(r"`([a-z0-9_|]+)`", paragraph):
        for part in token.split("|"):
            if not part.startswith("_"):
                stem = part[:part.index("layerdrop") + len("layerdrop")]
                names.add(part)
            else:
                names.add(stem + part)
    return names


def test_readme_names_every_registered_architecture_and_criterion():
    assert names_after("Architectures (`--arch`): ") == {a for a in ARCH_MODEL_REGISTRY if "_layerdrop" in a}
    assert names_after("Criteria: ") == {c for c in CRITERION_REGISTRY if "_layerdrop" in c}


def expand(token: str) -> list:
    """Brace expansion as the shell does it: reproduce_{lm,mt}.sh -> reproduce_lm.sh, reproduce_mt.sh."""
    brace = re.search(r"\{([^}]*)\}", token)
    if not brace:
        return [token]
    return [name for alt in brace.group(1).split(",") for name in expand(token[:brace.start()] + alt + token[brace.end():])]


def test_file_tree_names_every_module_and_script_and_nothing_that_is_gone():
    tree = README.split("## 5. Files", 1)[1].split("```", 2)[1]
    named = {name for token in re.findall(r"[\w{},.-]+\.(?:py|sh|md|txt|toml|ini)\b", tree) for name in expand(token)}
    files = {path.name for folder in ("fairseq_layerdrop", "scripts", "benchmarks") for path in (ROOT / folder).iterdir()
             if path.suffix in (".py", ".sh") and path.name != "__init__.py"}
    assert files - named == set(), "not in README section 5"
    ours = set()
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d != "work"]  # not .venv, .git, runs
        ours.update(names)
    assert named - ours == set(), "in README section 5, not here"
