"""Corpus builders (scripts/build_corpora.py) on hand-written fixtures (prepare_data.sh: test_prepare_data.py).

Never on the downloaded data: every input is made here in tmp_path.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the builders are scripts, not a package
import build_corpora as bc  # noqa: E402
import corpus_text as ct  # noqa: E402

PAGE = """<html><body><header><p id="par_id_header">LibreOffice Help</p></header>
<div id="DisplayArea"><h1 id="hd_id1" dir="auto">Find <span class="literal">Toolbar</span></h1>
{paras}
<div class="bascode"><pre><code>Dim a As Integer</code></pre></div></div></body></html>"""
EN = [
    '<p id="par_id2" class="paragraph">Press <span class="switchinline"><span hidden="true" class="MAC">'
    'Command</span><span hidden="true">Ctrl</span></span>+F to search.</p>',
    '<p id="par_id3" class="paragraph">Only in English, so it is dropped.</p>',
    '<p id="par_id4" class="code">SELECT a FROM b</p>',
    '<p id="par_id5" class="paragraph">Writer</p>',
    '<p id="par_id6" class="paragraph">Shows slides in shades of black and white.</p>',
]
DE = [  # another order, par_id3 missing, par_id5 untranslated
    '<p id="par_id6" class="paragraph">Zeigt Folien in Graustufen an.</p>',
    '<p id="par_id5" class="paragraph">Writer</p>',
    '<p id="par_id4" class="code">SELECT a FROM b</p>',
    '<p id="par_id2" class="paragraph">Drücken Sie <span class="switchinline"><span hidden="true" class="MAC">'
    'Befehl</span><span hidden="true">Strg</span></span>+F, um zu suchen.</p>',
]


def test_mt_pairs_by_id_in_english_order_markup_stripped():
    pairs = ct.pair_pages(PAGE.format(paras="\n".join(EN)), PAGE.format(paras="\n".join(DE)))
    # the title is the same in both languages (untranslated) and is dropped, as is the code
    assert pairs == [
        ("Press Ctrl+F to search.", "Drücken Sie Strg+F, um zu suchen."),
        ("Shows slides in shades of black and white.", "Zeigt Folien in Graustufen an."),
    ]


def test_help_paragraphs_keys_count_repeated_ids():
    html = '<p id="par_id1">One</p><p id="par_id1">Two</p><p id="bm_id9">bookmark</p>'
    assert ct.help_paragraphs(html) == {"par_id1#0": "One", "par_id1#1": "Two"}


@pytest.mark.parametrize("en, de, keep", [
    ("Open the file.", "Öffnen Sie die Datei.", True),
    ("", "Leer", False),                                   # empty side
    ("12 345", "12 345", False),                          # no letters (markup/number only)
    ("Writer", "Writer", False),                          # untranslated
    ("Yes", "Ja bitte sehr gern noch einmal", False),     # word ratio 6 > 2.5
    (" ".join(["word"] * 81), " ".join(["Wort"] * 81), False),  # > 80 words
])
def test_keep_pair(en, de, keep):
    assert ct.keep_pair(en, de) is keep


def _write_help(raw: Path, pages: dict):
    """pages: relative path -> (en paragraphs, de paragraphs) as {id: text}."""
    for rel, (en, de) in pages.items():
        for lang, paras in (("en-US", en), ("de", de)):
            path = raw / "usr/share/libreoffice/help" / lang / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            body = "".join(f'<p id="par_id{i}">{t}</p>' for i, t in paras.items())
            path.write_text(PAGE.format(paras=body), "utf-8")


def _help_fixture(raw: Path, n_pages=200):
    pages = {}
    for p in range(n_pages):
        en = {i: f"Page {p} explains option number {i} of the dialog." for i in range(5)}
        de = {i: f"Seite {p} erklärt die Option Nummer {i} des Dialogs." for i in range(5)}
        en[9], de[9] = "Click OK to close the dialog.", "Klicken Sie auf OK."  # on every page
        pages[f"text/shared/{p:03d}.html"] = (en, de)
    _write_help(raw, pages)


def _read_splits(out: Path, suffix: str) -> dict:
    return {s: (out / f"{s}.{suffix}").read_text("utf-8").splitlines() for s in bc.SPLITS}


def test_mt_build_is_deterministic_pages_never_straddle_and_no_leak(tmp_path):
    _help_fixture(tmp_path / "raw")
    bc.build("mt", tmp_path / "raw", tmp_path / "a")
    bc.build("mt", tmp_path / "raw", tmp_path / "b")
    for name in sorted(os.listdir(tmp_path / "a")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    en = _read_splits(tmp_path / "a", "en")
    de = _read_splits(tmp_path / "a", "de")
    assert all(len(en[s]) == len(de[s]) for s in bc.SPLITS)
    assert min(len(en[s]) for s in bc.SPLITS) > 0  # 3% of 200 pages: a few in valid and test
    for page in range(200):  # all numbered paragraphs of one page sit in one split
        homes = {s for s in bc.SPLITS for line in en[s] if line.startswith(f"Page {page} ")}
        assert len(homes) == 1
    assert en["train"].count("Click OK to close the dialog.") == 1  # deduped
    for split in ("valid", "test"):
        assert not set(en[split]) & set(en["train"])
        assert not set(de[split]) & set(de["train"])


def _keys_in(split: str, salt: str, n: int) -> list:
    keys = (f"key{i}" for i in range(100000))
    return [k for k in keys if bc.split_of(k, salt) == split][:n]


def test_split_of_is_stable_and_roughly_two_percent():
    keys = [f"doc/{i}.rst" for i in range(20000)]
    counts = {s: sum(bc.split_of(k, "lm") == s for k in keys) for s in bc.SPLITS}
    # pinned: the shipped splits depend on these; sha1 of "salt\0key", not Python's salted hash()
    assert [bc.split_of(f"doc/{i}.rst", "lm") for i in (141, 167, 119, 139, 0)] == [
        "valid", "valid", "test", "test", "train"]
    assert [bc.split_of(f"doc/{i}.rst", "mt") for i in (141, 167)] == ["train", "train"]  # another salt
    assert 300 < counts["valid"] < 500 and 300 < counts["test"] < 500


def test_assign_splits_removes_leaks_dedupes_and_caps_train():
    train_key, test_key = _keys_in("train", "t", 1)[0], _keys_in("test", "t", 1)[0]
    valid_key = _keys_in("valid", "t", 1)[0]
    groups = [
        (train_key, [("shared line",), ("train only",), ("train only",)]),
        (valid_key, [("valid only",), ("shared line",)]),
        (test_key, [("shared line",), ("valid only",), ("test only",)]),
    ]
    splits = bc.assign_splits(groups, "t")
    assert splits == {"train": [("shared line",), ("train only",)], "valid": [("valid only",)],
                      "test": [("test only",)]}
    assert bc.assign_splits(groups, "t", max_train=1)["train"] == [("shared line",)]


RST = """\
.. SPDX-License-Identifier: GPL-2.0

==================
The Example Driver
==================

:Author: Jane Doe <jane@example.org>

The example driver shows how a small device is *probed* and bound to
its ``struct device`` through the :c:func:`probe_one` callback.

.. note::
   This note is a directive and does not belong to the prose.

Load the module like this::

    modprobe example debug=1
    echo 1 > /sys/bus/example/enable

+-----------+-----------+
| column one| column two|
+-----------+-----------+

- Each list item that is long enough becomes its own paragraph of text.
- short item

.. code-block:: c

   static int probe_one(struct device *dev) { return 0; }

See `the kernel documentation <https://kernel.org/doc/>`_ for more details on the topic.
"""


def test_rst_paragraphs_keep_prose_only():
    assert ct.rst_paragraphs(RST) == [
        "The example driver shows how a small device is probed and bound to its struct device "
        "through the probe_one callback.",
        "Each list item that is long enough becomes its own paragraph of text.",
        "See the kernel documentation for more details on the topic.",
    ]


def test_drop_blocks_turns_literal_marker_into_colon():
    out = ct.drop_blocks(["Use it like this::", "", "    code here", "Back to prose."])
    assert out == ["Use it like this:", "", "", "Back to prose."]


def test_lm_build_skips_translations(tmp_path):
    src = tmp_path / "raw/usr/share/doc/linux-doc-6.1/html/_sources"
    translated = RST.replace("example driver shows", "Beispieltreiber zeigt").replace("Each list item", "Jeder Punkt")
    assert translated != RST
    for rel, text in (("driver.rst.txt", RST), ("translations/zh_CN/driver.rst.txt", translated)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text, "utf-8")
    counts = bc.build("lm", tmp_path / "raw", tmp_path / "out")
    assert sum(counts.values()) == 3
    written = "".join(f.read_text("utf-8") for f in (tmp_path / "out").iterdir())
    assert "example driver shows" in written
    assert "Beispieltreiber" not in written and "Jeder Punkt" not in written


TRANSLATION = """\
Package: {name}
Description-md5: 0123
Description-en: {synopsis}
 {first}
 .
 {second}
"""


def test_parse_descriptions_paragraphs():
    text = TRANSLATION.format(name="a", synopsis="tool  for x", first="First line\n continues.",
                              second="Second.") + "\nPackage: b\nDescription-en: no long text\n"
    assert list(ct.parse_descriptions(text)) == [
        ("tool for x", ["First line continues.", "Second."]), ("no long text", [])]


def test_bytes_that_were_not_utf8_drop_their_pair_paragraph_or_description():
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")  # how corpus_io.read_raw hands over a stray byte
    assert ct.undecodable(bad) and not ct.undecodable("a written U+FFFD \ufffd is text")
    assert not ct.keep_pair(f"Open the {bad} file.", "Öffnen Sie die Datei.")
    assert ct.keep_pair("Open the \ufffd file.", "Öffnen Sie die \ufffd Datei.")
    assert ct.rst_paragraphs(RST.replace("a small device", f"a {bad} device")) == ct.rst_paragraphs(RST)[1:]
    good = TRANSLATION.format(name="a", synopsis="kept", first="First.", second="Second.")
    damaged = TRANSLATION.format(name="b", synopsis="dropped", first="First.", second=f"Second {bad}.")
    assert list(ct.parse_descriptions(good + "\n" + damaged)) == [("kept", ["First.", "Second."])]


def test_sum_boilerplate_first_paragraph_lands_in_one_split(tmp_path):
    boiler = " ".join(["The shared framework boilerplate paragraph says the same thing."] * 5)
    stanzas = []
    for i in range(300):
        first = boiler if i % 3 == 0 else f"Package {i} has its own opening about topic {i} " * 5
        stanzas.append(TRANSLATION.format(name=f"p{i}", synopsis=f"summary {i}", first=first,
                                          second=f"This is the package number {i}."))
    stanzas.append(TRANSLATION.format(name="tiny", synopsis="too short", first="Few words.", second="."))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/x_Translation-en.txt").write_text("\n".join(stanzas), "utf-8")
    bc.build("sum", tmp_path / "raw", tmp_path / "out")
    docs, sums = _read_splits(tmp_path / "out", "doc"), _read_splits(tmp_path / "out", "sum")
    homes = {s for s in bc.SPLITS for d in docs[s] if d.startswith(boiler)}
    assert len(homes) == 1
    assert sum(len(v) for v in docs.values()) == 300 and "too short" not in sum(sums.values(), [])
    assert all(len(docs[s]) == len(sums[s]) for s in bc.SPLITS)


def _run(args, **env):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


MESSAGES = {"mt": "raw directory not found: /nonexistent/raw", "sum": "no Translation-en index under",
            "embed": "mt_en_de/train.en (run fetch_corpora.sh first)"}


@pytest.mark.parametrize("args", [["mt", "/nonexistent/raw"], ["sum", "EMPTY"], ["embed", "EMPTY"]])
def test_build_cli_bad_input_exits_2_with_one_line(tmp_path, args):
    (tmp_path / "raw").mkdir()
    raw = str(tmp_path / "raw") if args[1] == "EMPTY" else args[1]  # exists but holds no data
    out = _run([sys.executable, str(SCRIPTS / "build_corpora.py"), args[0], raw, str(tmp_path / "out")])
    assert out.returncode == 2
    assert out.stderr.startswith("build_corpora.py: error:") and out.stderr.count("\n") == 1
    assert MESSAGES[args[0]] in out.stderr, out.stderr
