"""Text extraction for scripts/build_corpora.py: one reader per source format.

- LibreOffice help pages (HTML): the text of each paragraph that carries a ``par_id``/``hd_id``
  attribute; the same id marks the same paragraph in every language, so pages align by id.
- reStructuredText (kernel docs): prose paragraphs only; directives, comments, literal/code
  blocks, titles, tables and field lists are dropped and inline markup is unwrapped.
- apt's Translation-en index: each package's synopsis and long-description paragraphs.

Bytes that were not UTF-8 reach these functions as lone surrogates (corpus_io.read_raw decodes
raw sources with ``errors="surrogateescape"``): every pair, paragraph or description holding one
is dropped (:func:`undecodable`), so a damaged file costs its damaged parts, never the build.

Standard library only; every function is pure (text in, text out) so tests call them directly.
"""
import re
from html.parser import HTMLParser

MAX_WORDS, MAX_RATIO = 80, 2.5  # MT pair filters: longest side, longest/shortest in words
UNDECODED = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8 (surrogateescape)


def undecodable(text: str) -> bool:
    """True when ``text`` holds a byte of its file that was not UTF-8."""
    return UNDECODED.search(text) is not None


def normalise(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs, nbsp) to one space."""
    return " ".join(text.split())


# ---------------------------------------------------------------- LibreOffice help (HTML)
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
TEXT_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}
SKIP_TAGS = {"script", "style", "pre", "code"}
PARA_ID = re.compile(r"(par|hd)_id")
NON_PROSE_CLASS = re.compile(r"code|image|youtube")


class HelpParagraphs(HTMLParser):
    """Text of every ``<p|hN id="par_id...|hd_id...">`` of a help page, as (key, text).

    Hidden platform/module variants (``<span hidden class="MAC">``) are skipped, the default
    variant (a hidden span with no class) is kept, so both languages read the same way. Code
    paragraphs and ``<pre>`` blocks are skipped. The key is the id plus its occurrence number,
    because an embedded snippet may repeat an id within one page.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []   # [tag, kind, id, text parts]; kind in {"skip", "collect", None}
        self.paragraphs = []
        self.counts = {}

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            if tag == "br":
                self.handle_data(" ")
            return
        a = dict(attrs)
        cls, pid = a.get("class") or "", a.get("id") or ""
        kind = None
        if tag in SKIP_TAGS or ("hidden" in a and cls):
            kind = "skip"
        elif tag in TEXT_TAGS and PARA_ID.match(pid):
            kind = "skip" if NON_PROSE_CLASS.search(cls) else "collect"
        self.stack.append([tag, kind, pid, []])

    def handle_endtag(self, tag):
        if all(entry[0] != tag for entry in self.stack):
            return  # stray end tag
        while self.stack:
            entry = self.stack.pop()
            if entry[1] == "collect":
                n = self.counts.get(entry[2], 0)
                self.counts[entry[2]] = n + 1
                self.paragraphs.append((f"{entry[2]}#{n}", normalise("".join(entry[3]))))
            if entry[0] == tag:
                return

    def handle_data(self, data):
        target = None
        for entry in self.stack:
            if entry[1] == "skip":
                return
            if entry[1] == "collect":
                target = entry  # innermost collecting element wins
        if target is not None:
            target[3].append(data)


def help_paragraphs(html_text: str) -> dict:
    parser = HelpParagraphs()
    parser.feed(html_text)
    parser.close()
    return dict(parser.paragraphs)


def keep_pair(en: str, de: str) -> bool:
    """Drop damaged, empty, markup-only, untranslated, over-long and odd-ratio pairs."""
    if undecodable(en) or undecodable(de):
        return False
    if not re.search(r"[^\W\d_]", en) or not re.search(r"[^\W\d_]", de) or en == de:
        return False
    n_en, n_de = len(en.split()), len(de.split())
    return max(n_en, n_de) <= MAX_WORDS and max(n_en, n_de) / min(n_en, n_de) <= MAX_RATIO


def pair_pages(en_html: str, de_html: str) -> list:
    """(en, de) pairs of one page, in English order; ids missing on either side are dropped."""
    de = help_paragraphs(de_html)
    return [(text, de[key]) for key, text in help_paragraphs(en_html).items()
            if key in de and keep_pair(text, de[key])]


# ---------------------------------------------------------------- reStructuredText
ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}")          # ===== ----- ~~~~~ title lines
TABLE_LINE = re.compile(r"^(\+[-=+]|\||=+( +=+)+$)")         # grid/simple table, line block
FIELD = re.compile(r"^:[\w .-]+:(\s|$)")                     # :Author: ... field lists
BULLET = re.compile(r"^([-*+•]|#\.|\d+[.)]|\(?[a-zA-Z0-9]\))\s+")
PLAIN_WORD = re.compile(r"^[(\"']?[A-Za-z][a-z'-]*[)\"']?[.,;:!?]*[)\"']?$")
INLINE = [  # (pattern, replacement), applied in order
    (re.compile(r":[\w:+.-]+:`~?!?([^`<]*?)\s*(<[^>`]*>)?`"), r"\1"),   # :role:`text <target>`
    (re.compile(r"``(.+?)``"), r"\1"),                               # ``literal``
    (re.compile(r"`([^`<]*?)\s*(<[^>`]*>)?`__?"), r"\1"),              # `link <url>`_
    (re.compile(r"`([^`]+)`"), r"\1"),                               # `interpreted`
    (re.compile(r"\*\*(.+?)\*\*"), r"\1"),                           # **strong**
    (re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])"), r"\1"),    # *emphasis*
    (re.compile(r"\s?\[(#\w*|\d+|\*)\]_"), ""),                      # footnote references
    (re.compile(r"\\(.)"), r"\1"),                                   # backslash escapes
]


def drop_blocks(lines: list) -> list:
    """Blank out directives, comments and literal blocks (``::`` + indented text)."""
    out, skip_indent = [], None
    for line in lines:
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not text or indent > skip_indent:
                out.append("")
                continue
            skip_indent = None
        if text.startswith(".."):  # .. directive::, .. comment, .. _target:, .. |sub|
            skip_indent = indent
            out.append("")
            continue
        if text.endswith("::"):    # "text::" -> "text:" and the indented block is code
            skip_indent = indent
            line = "" if text == "::" else re.sub(r"\s*::$", "" if text.endswith(" ::") else ":", line)
        out.append(line)
    return out


def raw_paragraphs(lines: list):
    """Runs of non-blank lines of equal text indentation; a bullet starts a new run."""
    para, para_indent = [], None
    for line in lines + [""]:
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        bullet = BULLET.match(text)
        if para and (not text or bullet or indent != para_indent):
            yield para
            para = []
        if text:
            if not para:
                para_indent = indent + (bullet.end() if bullet else 0)
            para.append(text[bullet.end():] if bullet and not para else text)


def clean_inline(text: str) -> str:
    for pattern, repl in INLINE:
        text = pattern.sub(repl, text)
    return normalise(text)


def is_prose(text: str, min_words: int = 8) -> bool:
    """At least ``min_words`` words, mostly plain words (not code, paths or numbers)."""
    words = text.split()
    if len(words) < min_words:
        return False
    plain = sum(1 for w in words if PLAIN_WORD.match(w))
    return plain / len(words) >= 0.5 and not re.search(r"[{}]\s*$|^[#$]", text)


def rst_paragraphs(source: str) -> list:
    """Prose paragraphs of a reST document, inline markup removed, one string each."""
    out = []
    for para in raw_paragraphs(drop_blocks(source.expandtabs(8).splitlines())):
        if any(ADORNMENT.fullmatch(line) or TABLE_LINE.match(line) for line in para):
            continue  # section title (with its underline), transition or table
        if FIELD.match(para[0]):
            continue
        text = clean_inline(" ".join(para))
        if is_prose(text) and not undecodable(text):
            out.append(text)
    return out


# ---------------------------------------------------------------- apt description index
def parse_descriptions(text: str):
    """(synopsis, [paragraph, ...]) per stanza of an apt Translation-en index; a description
    holding a byte that was not UTF-8 is skipped whole (its paragraphs belong together)."""
    for stanza in re.split(r"\n\s*\n", text):
        m = re.search(r"^Description-en: ?(.*)$((?:\n[ \t].*)*)", stanza, re.M)
        if not m or undecodable(m.group(0)):
            continue
        paras, current = [], []
        for line in m.group(2).split("\n")[1:]:
            if line.strip() == ".":  # " ." separates paragraphs
                paras.append(normalise(" ".join(current)))
                current = []
            else:
                current.append(line)
        paras.append(normalise(" ".join(current)))
        yield normalise(m.group(1)), [p for p in paras if p]
