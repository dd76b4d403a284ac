"""The man pages match the code, and render cleanly.

Run with Debian's interpreter: /usr/bin/python3 -m pytest -q tests/e2e

What is cross-checked, both ways (documented <=> in the code):
  switchmail(8)       every row of flag_table (src/options.c) is an entry of
                      OPTIONS, and every entry of OPTIONS is a row; IGNORED
                      rows say "ignored", REFUSED rows say "refused".  The
                      built binary's --help lists the same flags (a check of
                      the C reading below).  LIMITS gives the values of the
                      limit macros, SMTP ON STANDARD INPUT those of
                      smtpin.h; EXIT STATUS every code of the README.
  switchmail.conf(5)  every key table of src/config.c, per group: the keys
                      of each group are exactly the entries of its .SS in
                      SETTINGS, each with its type; connector-only keys say
                      "Connector only".  PRESETS lists exactly the presets
                      of etc/providers.conf.
  switchmailctl(8)    every row of commands[] (src/switchmailctl.c), with
                      its subcommands, is an entry of COMMANDS; a documented
                      command the table lacks must say "Not in this version
                      yet", and a command the table has must not.  Its
                      global options (parse_globals) are OPTIONS' entries.
  all three           the *_ENV variables of src/*.h in ENVIRONMENT; every
                      page renders with `man -l` (MANWIDTH=80, UTF-8 and
                      ASCII) and `groff -man -ww -z` without a warning, in
                      80 columns, and whatis (lexgrog) reads its NAME line.

How the C is read.  No compiler is involved: the text is read as C's lexer
would, enough to be robust to formatting.  Comments are removed while string
and character literals are kept intact (so "/*" or "}" inside a string is
never mistaken for syntax); an initializer is found by its declarator
("flag_table[] =") and cut at its matching brace, skipping literals; its
rows are the brace groups at depth one; a row's fields are split at commas
outside literals, parentheses and braces; a field made of adjacent string
literals is decoded as C would ("a" "b" -> "ab", \\" -> ").  A row count
taken independently ('{"-' at the start of a row) guards the splitting.

How the pages are read.  Entries are .TP paragraphs (and .TQ extra tags)
at indentation depth 0 (.RS/.RE nesting is tracked, so the options of
`connect` are not commands).  A tag's name is its first macro argument
with roff escapes undone (\\- -> -, \\(dq -> ", \\f fonts dropped, ...);
the sections' conventions are stated at the top of each page.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PAGES = [SRC / "switchmail.8", SRC / "switchmailctl.8", SRC / "switchmail.conf.5"]
MAN_ENV = {"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "MANPAGER": "cat", "PAGER": "cat"}
NOT_YET = "not in this version yet"


# --------------------------------------------------------------------------
# Reading C source text


def strip_c_comments(text: str) -> str:
    """text without /* */ and // comments (each replaced by a space, line
    breaks kept); string and character literals are copied untouched."""
    out: List[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_literal(text: str, i: int) -> int:
    """Index just past the string or character literal starting at i."""
    q, j = text[i], i + 1
    while j < len(text) and text[j] != q:
        j += 2 if text[j] == "\\" else 1
    return j + 1


def matching(text: str, i: int) -> int:
    """Index of the bracket closing the one at text[i] ('{' or '('),
    skipping literals."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = [pairs[text[i]]]
    j = i + 1
    while j < len(text):
        c = text[j]
        if c in "\"'":
            j = skip_literal(text, j)
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]":
            if c != stack.pop():
                raise ValueError(f"unbalanced {c!r} at offset {j}")
            if not stack:
                return j
        j += 1
    raise ValueError("unterminated bracket")


def initializer(code: str, declarator: str) -> str:
    """The text between the braces of `<declarator>[] = { ... }`."""
    m = re.search(r"\b" + re.escape(declarator) + r"\s*\[\s*\w*\s*\]\s*=\s*\{",
                  code)
    assert m, f"no initializer for {declarator}[] found"
    start = m.end() - 1
    return code[start + 1:matching(code, start)]


def rows(body: str) -> List[str]:
    """The brace groups at depth one of an initializer's body, without
    their braces."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c in "\"'":
            i = skip_literal(body, i)
        elif c == "{":
            j = matching(body, i)
            out.append(body[i + 1:j])
            i = j + 1
        else:
            i += 1
    return out


def fields(row: str) -> List[str]:
    """A row split at the commas outside literals and brackets."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(row):
        c = row[i]
        if c in "\"'":
            i = skip_literal(row, i)
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(row[start:i].strip())
            start = i + 1
        i += 1
    last = row[start:].strip()
    if last:
        out.append(last)
    return out


C_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'",
             "0": "\0", "a": "\a"}


def c_string(field_text: str) -> Optional[str]:
    """The value of a field made only of adjacent string literals, or None
    (a macro, a number, NULL...)."""
    pieces = re.findall(r'"((?:[^"\\]|\\.)*)"', field_text)
    rest = re.sub(r'"((?:[^"\\]|\\.)*)"', "", field_text).strip()
    if not pieces or rest:
        return None
    return "".join(re.sub(r"\\(.)", lambda m: C_ESCAPES.get(m.group(1),
                                                           m.group(1)), p)
                   for p in pieces)


def functions(code: str) -> Dict[str, str]:
    """Function name -> body, for every definition at the start of a line
    (the project's style: return type, then name, then parameters)."""
    out = {}
    for m in re.finditer(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\(([^;{}]*)\)\s*\{",
                         code, re.M):
        if m.group(1) in ("if", "while", "for", "switch", "sizeof"):
            continue
        start = m.end() - 1
        out[m.group(1)] = code[start:matching(code, start) + 1]
    return out


@pytest.fixture(scope="module")
def options_c() -> str:
    return strip_c_comments((SRC / "options.c").read_text())


@pytest.fixture(scope="module")
def flag_rows(options_c) -> Dict[str, str]:
    """flag text ("-f", "-bs", "--help") -> kind (IMPLEMENTED, IGNORED,
    REFUSED), from flag_table."""
    body = initializer(options_c, "flag_table")
    table = {}
    for r in rows(body):
        f = fields(r)
        text = c_string(f[0])
        assert text is not None and text.startswith("-"), f"odd row {r!r}"
        assert f[1] in ("IMPLEMENTED", "IGNORED", "REFUSED"), f"odd row {r!r}"
        assert text not in table, f"{text} twice in flag_table"
        table[text] = f[1]
    # Independent count: every row opens with {"- (after optional space).
    assert len(table) == len(re.findall(r'\{\s*"-', body))
    return table


@dataclass
class KeyRow:
    name: str
    kind: str
    setter: str
    connector_only: bool


@pytest.fixture(scope="module")
def config_c() -> str:
    return strip_c_comments((SRC / "config.c").read_text())


@pytest.fixture(scope="module")
def key_tables(config_c) -> Dict[str, List[KeyRow]]:
    """Every `static const struct key NAME[]` of config.c, by NAME."""
    tables = {}
    for m in re.finditer(r"\bstruct\s+key\s+(\w+)\s*\[\s*\]\s*=", config_c):
        out = []
        for r in rows(initializer(config_c, m.group(1))):
            f = fields(r)
            name = c_string(f[0])
            assert name and re.fullmatch(r"[a-z_][a-z0-9_]*", name), r
            assert f[1].startswith("K_"), r
            out.append(KeyRow(name, f[1], f[3], len(f) > 4 and f[4] == "true"))
        tables[m.group(1)] = out
    assert tables, "no key tables found in config.c"
    return tables


def tables_used(fn: str, funcs: Dict[str, str], tables: Set[str],
                max_depth: int = 3) -> Set[str]:
    """The key tables a function names, searched breadth first through the
    functions it calls: the nearest level that names any wins (set_connector
    -> load_route -> route_keys).  Empty for a free-form group (aliases)."""
    level, seen = [fn], {fn}
    for _ in range(max_depth + 1):
        found = {t for f in level for t in tables
                 if re.search(r"\b" + t + r"\b", funcs.get(f, ""))}
        if found:
            return found
        nxt = []
        for f in level:
            for callee in re.findall(r"\b(\w+)\s*\(", funcs.get(f, "")):
                if callee in funcs and callee not in seen:
                    seen.add(callee)
                    nxt.append(callee)
        level = nxt
    return set()


@pytest.fixture(scope="module")
def config_groups(config_c, key_tables) -> Dict[str, Optional[List[KeyRow]]]:
    """Group name -> its keys ("" is the top level); None for a group whose
    members are free names (aliases).  The top level is the table
    config_load() passes; a group's table is the one its setter uses; the
    native route has the route keys that are not connector-only."""
    funcs = functions(config_c)
    names = set(key_tables)
    root = tables_used("config_load", funcs, names, max_depth=0)
    assert len(root) == 1, f"config_load names {root}"
    root_rows = key_tables[root.pop()]
    groups: Dict[str, Optional[List[KeyRow]]] = {"": root_rows}
    for r in root_rows:
        if r.kind != "K_GROUP":
            continue
        used = tables_used(r.setter, funcs, names)
        assert len(used) <= 1, f"{r.setter} uses {used}"
        keys = key_tables[used.pop()] if used else None
        if keys is not None and r.name != "connector":
            keys = [k for k in keys if not k.connector_only]
        groups[r.name] = keys
    return groups


@pytest.fixture(scope="module")
def ctl_commands() -> Dict[str, str]:
    """Command name -> its help line, from commands[] of switchmailctl.c:
    a row's first field is the name, its last string field the help."""
    code = strip_c_comments((SRC / "switchmailctl.c").read_text())
    out = {}
    for r in rows(initializer(code, "commands")):
        strings = [c_string(f) for f in fields(r)]
        strings = [s for s in strings if s is not None]
        assert len(strings) >= 2, r
        assert strings[0] not in out, f"{strings[0]} twice in commands[]"
        out[strings[0]] = strings[-1]
    assert out, "no commands found"
    return out


@pytest.fixture(scope="module")
def ctl_options() -> Set[str]:
    """The global options switchmailctl's parse_globals compares with."""
    code = strip_c_comments((SRC / "switchmailctl.c").read_text())
    body = functions(code)["parse_globals"]
    opts = {s for s in re.findall(r'"([^"\\]*)"', body)
            if re.fullmatch(r"--?[A-Za-z][\w-]*", s)}
    assert "-C" in opts
    return opts


def env_variables() -> Set[str]:
    """Values of the *_ENV macros of src/*.h ("SWITCHMAIL_CONFIG", ...)."""
    out = set()
    for h in SRC.glob("*.h"):
        out |= set(re.findall(r'^#define\s+\w+_ENV\s+"([A-Z_]+)"',
                              h.read_text(), re.M))
    return out


def macro_value(name: str) -> int:
    """An integer #define of src/*.h, its expression evaluated."""
    for h in SRC.glob("*.h"):
        m = re.search(r"^#define\s+" + name + r"\s+(.+?)\s*(?:/\*.*)?$",
                      strip_c_comments(h.read_text()), re.M)
        if m:
            expr = re.sub(r"(\d+)[uUlL]+\b", r"\1", m.group(1))
            assert re.fullmatch(r"[\d\s\*\+\(\)]+", expr), expr
            return int(eval(expr))  # digits and * + ( ) only
    raise AssertionError(f"#define {name} not found in src/*.h")


# --------------------------------------------------------------------------
# Reading roff (man macros)


ROFF_CHARS = {"dq": '"', "aq": "'", "lq": '"', "rq": '"', "oq": "'",
              "cq": "'", "mu": "x", "OK": "+", "bu": "*", "em": "--",
              "en": "-", "->": "->", "hy": "-", "ti": "~", "rs": "\\",
              "ha": "^", "at": "@", "sl": "/", "co": "(c)"}


def unescape(s: str) -> str:
    """Plain text of a roff string: escapes undone, fonts dropped."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e == "(":
            out.append(ROFF_CHARS.get(s[i + 2:i + 4], ""))
            i += 4
        elif e == "[":
            j = s.index("]", i)
            out.append(ROFF_CHARS.get(s[i + 2:j], ""))
            i = j + 1
        elif e in "fF*n":
            if s[i + 2:i + 3] == "(":
                i += 5
            elif s[i + 2:i + 3] == "[":
                i = s.index("]", i) + 1
            else:
                i += 3
        elif e in "-e~ 0\\":
            out.append({"-": "-", "e": "\\", "~": " ", " ": " ", "0": " ",
                        "\\": "\\"}[e])
            i += 2
        else:  # \& \% \c \| \^ and the rest: nothing visible
            i += 2
    return "".join(out)


def macro_args(line: str) -> List[str]:
    """The arguments of a macro line, as roff splits them: at spaces,
    with "quoted arguments" (and "" for a quote inside them)."""
    rest = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
    rest = re.sub(r'\\".*$', "", rest)  # an inline comment
    args, i = [], 0
    while i < len(rest):
        if rest[i] == " ":
            i += 1
        elif rest[i] == '"':
            j, buf = i + 1, []
            while j < len(rest):
                if rest[j] == '"' and rest[j + 1:j + 2] == '"':
                    buf.append('"')
                    j += 2
                elif rest[j] == '"':
                    break
                else:
                    buf.append(rest[j])
                    j += 1
            args.append("".join(buf))
            i = j + 1
        else:
            j = rest.find(" ", i)
            j = len(rest) if j < 0 else j
            args.append(rest[i:j])
            i = j
    return args


FONT_MACROS = {"B", "I", "BI", "BR", "IB", "IR", "RB", "RI", "SM", "SB"}


def line_text(line: str) -> str:
    """Plain text of one source line: a font macro's arguments joined as
    roff prints them (alternating macros join without spaces), or the
    text line unescaped; other requests give nothing."""
    if not line.startswith((".", "'")):
        return unescape(line)
    name = line[1:].split(None, 1)[0] if line[1:].strip() else ""
    if name not in FONT_MACROS:
        return ""
    sep = " " if name in ("B", "I", "SM", "SB") else ""
    return unescape(sep.join(macro_args(line)))


@dataclass
class Entry:
    tags: List[str]          # plain text of each tag line (.TP, .TQ)
    names: List[str]         # first argument of each tag, unescaped
    text: str = ""           # plain text of the paragraph, tags included


@dataclass
class Page:
    path: Path
    # section -> subsection ("" before the first .SS) -> entries
    sections: Dict[str, Dict[str, List[Entry]]] = field(default_factory=dict)
    texts: Dict[str, str] = field(default_factory=dict)  # section -> text


def read_page(path: Path) -> Page:
    """Sections, subsections and their depth-0 .TP entries."""
    page = Page(path)
    lines = [l for l in path.read_text().splitlines()
             if not re.match(r"^[.']\s*\\\"", l)]
    sec = sub = ""
    depth = 0
    entry: Optional[Entry] = None
    want_tag = False
    for line in lines:
        req = line[1:].split(None, 1)[0] if line.startswith(".") and \
            line[1:].strip() else ""
        if req in ("SH", "SS"):
            title = unescape(" ".join(macro_args(line)))
            if req == "SH":
                sec, sub = title, ""
            else:
                sub = title
            page.sections.setdefault(sec, {}).setdefault(sub, [])
            entry, depth = None, 0
            continue
        page.texts[sec] = page.texts.get(sec, "") + " " + line_text(line)
        if req == "RS":
            depth += 1
        elif req == "RE":
            depth = max(0, depth - 1)
        elif req in ("TP", "TQ") and depth == 0:
            if req == "TP" or entry is None:
                entry = Entry([], [])
                page.sections.setdefault(sec, {}).setdefault(sub, []).append(
                    entry)
            want_tag = True
            continue
        elif req in ("PP", "P", "LP", "IP") and depth == 0:
            entry = None
        if want_tag:
            want_tag = False
            if line.startswith("."):
                args = macro_args(line)
                first = unescape(args[0]) if args else ""
            else:
                first = unescape(line).split()[0]
            entry.tags.append(line_text(line))
            entry.names.append(first)
        if entry is not None:
            entry.text += " " + line_text(line)
    return page


def entries(page: Page, section: str, sub: Optional[str] = None
            ) -> List[Entry]:
    assert section in page.sections, \
        f"{page.path.name} has no section {section}"
    subs = page.sections[section]
    if sub is not None:
        return subs[sub]
    return [e for es in subs.values() for e in es]


@pytest.fixture(scope="module")
def sm8() -> Page:
    return read_page(SRC / "switchmail.8")


@pytest.fixture(scope="module")
def ctl8() -> Page:
    return read_page(SRC / "switchmailctl.8")


@pytest.fixture(scope="module")
def conf5() -> Page:
    return read_page(SRC / "switchmail.conf.5")


# --------------------------------------------------------------------------
# The reader itself, on known text


def test_c_reader_on_tricky_text():
    code = strip_c_comments(r'''
        /* a comment with { and " */
        static const struct x t[] = {
            {"-a", A, "a, {b}", f(1, 2)}, // trailing {"-z"
            {"-b" "c", B, "q\"uote", NULL},
        };''')
    body = initializer(code, "t")
    got = [fields(r) for r in rows(body)]
    assert [c_string(f[0]) for f in got] == ["-a", "-bc"]
    assert c_string(got[0][2]) == "a, {b}"
    assert c_string(got[1][2]) == 'q"uote'
    assert got[0][3] == "f(1, 2)" and c_string(got[0][3]) is None


def test_roff_reader_on_tricky_text():
    assert unescape(r"\-f \(dqx\(dq \fBbold\fR \%E\-mail\&.") == \
        '-f "x" bold E-mail.'
    assert macro_args(r'.BI \-f " addr"') == [r"\-f", " addr"]
    assert macro_args('.B "a ""b"" c" d') == ['a "b" c', "d"]
    assert line_text(r'.BR \-q [\c') == "-q["


# --------------------------------------------------------------------------
# switchmail(8) and the flag table


def test_every_flag_is_documented_and_every_documented_option_exists(
        flag_rows, sm8):
    documented: Dict[str, Entry] = {}
    for e in entries(sm8, "OPTIONS"):
        for name in e.names:
            assert name not in documented, f"{name} documented twice"
            documented[name] = e
    missing = sorted(set(flag_rows) - set(documented))
    extra = sorted(set(documented) - set(flag_rows))
    assert not missing, f"in flag_table, not in switchmail.8 OPTIONS: {missing}"
    assert not extra, f"in switchmail.8 OPTIONS, not in flag_table: {extra}"


def test_ignored_and_refused_flags_say_so(flag_rows, sm8):
    by_name = {n: e for e in entries(sm8, "OPTIONS") for n in e.names}
    wrong = []
    for flag, kind in flag_rows.items():
        if flag not in by_name:
            continue  # reported by the test above
        text = by_name[flag].text.lower()
        if kind == "IGNORED" and "ignored" not in text:
            wrong.append(f"{flag} is IGNORED but its entry does not say so")
        if kind == "REFUSED" and "refused" not in text:
            wrong.append(f"{flag} is REFUSED but its entry does not say so")
    assert not wrong, "\n".join(wrong)


def test_flags_appear_in_the_binary_help_too(flag_rows):
    """The --help the table produces lists the same flags: proves the C
    reading above found every row (skipped before the build)."""
    binary = Path(os.environ.get("SWITCHMAIL_BIN", REPO / "build/switchmail"))
    if not binary.exists():
        pytest.skip(f"{binary} not built")
    out = subprocess.run([str(binary), "--help"], capture_output=True,
                         text=True, timeout=10, env={"PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr
    # "  -f ADDR   help" lines, then "Accepted and ignored: -A c|m -c ..."
    # and "Refused (...): -ba ..." wrapped onto indented lines.
    shown, in_list = set(), False
    for line in out.stdout.splitlines():
        if line.startswith(("Accepted", "Refused")):
            in_list, words = True, line.split(":", 1)[1].split()
        elif in_list and line.startswith("   "):
            words = line.split()
        elif line.startswith("  -"):
            in_list, words = False, line.split()[:1]
        else:
            in_list = False
            continue
        for w in words:
            if w.startswith("-"):
                shown.add(re.split(r"[<\[]", w)[0])
    assert shown == set(flag_rows)


def test_exit_codes_of_the_readme_are_documented(sm8):
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for m in re.finditer(r"^\|\s*([\d /]+?)\s*(?:`|\|)", table, re.M):
        codes |= set(re.findall(r"\d+", m.group(1)))
    assert {"0", "64", "78"} <= codes, codes
    tagged = {c for e in entries(sm8, "EXIT STATUS") for t in e.tags
              for c in re.findall(r"\b\d+\b", t)}
    assert codes <= tagged, f"undocumented: {sorted(codes - tagged)}"


def test_limits_match_the_code(sm8):
    def size(n: int) -> str:
        for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if n % k == 0:
                return f"{n // k} {unit}"
        return str(n)

    def grouped(n: int) -> str:
        return f"{n:,}".replace(",", " ")

    expected = {
        "header block": size(macro_value("MESSAGE_HEADER_MAX")),
        "header line": str(macro_value("MESSAGE_LINE_MAX")),
        "body line": str(macro_value("MESSAGE_LINE_MAX")),
        "message": size(macro_value("MESSAGE_SIZE_MAX")),
        "recipients": grouped(macro_value("ADDRESS_LIST_MAX")),
        "username, password": str(macro_value("CONFIG_SECRET_MAX")),
        "each network step": str(macro_value("CONFIG_TIMEOUT_DEFAULT")),
    }
    got = {e.tags[0]: e.text for e in entries(sm8, "LIMITS")}
    for what, value in expected.items():
        assert what in got, f"LIMITS has no entry {what!r}"
        assert value in got[what], f"LIMITS {what}: {value} expected"


def test_smtp_session_limits_match_the_code(sm8):
    """The numbers of SMTP ON STANDARD INPUT are smtpin.h's."""
    if not (SRC / "smtpin.h").exists():
        pytest.skip("src/smtpin.h not written yet")
    text = sm8.texts["SMTP ON STANDARD INPUT"]
    for macro in ("SMTPIN_LINE_MAX", "SMTPIN_ERRORS_MAX",
                  "SMTPIN_IDLE_TIMEOUT"):
        value = str(macro_value(macro))
        assert re.search(r"\b" + value + r"\b", text), f"{macro} {value}"


def test_examples_for_php_cron_symfony(sm8):
    text = re.sub(r"\s+", " ", sm8.texts["EXAMPLES"])
    for needle in ('sendmail_path = "/usr/sbin/sendmail -t -i"',
                   "MAILER_DSN=sendmail://default?command=/usr/sbin/"
                   "sendmail%20-bs",
                   "sendmail -FCronDaemon -i -B8BITMIME -oem root",
                   "mailq", "newaliases", "sendmail -q"):
        assert needle in text, f"EXAMPLES lacks {needle!r}"


# --------------------------------------------------------------------------
# switchmail.conf(5) and the key tables

KIND_WORDS = {"K_STRING": "string", "K_INT": "integer", "K_BOOL": "boolean",
              "K_GROUP": "group", "K_STRINGS": "string or array of strings",
              "K_INTS": "array of integers"}


def documented_settings(conf5: Page) -> Dict[Tuple[str, ...], List[Entry]]:
    """SETTINGS subsections keyed by the groups they cover: ("",) for "Top
    level", ("connector", "native") for "connector and native"."""
    out = {}
    for sub, es in conf5.sections["SETTINGS"].items():
        if sub == "":
            assert not es, "SETTINGS entries before the first .SS"
            continue
        words = re.findall(r"[a-z_]+", sub.lower())
        key = ("",) if sub.lower().startswith("top level") else tuple(words)
        out[key] = es
    return out


def test_every_setting_is_documented_per_group(config_groups, conf5):
    docs = documented_settings(conf5)
    problems = []
    for group, keys in config_groups.items():
        covering = [k for k in docs if group in k]
        assert len(covering) == 1, \
            f"group {group or 'top level'!r}: SETTINGS subsections {covering}"
        es = docs[covering[0]]
        if keys is None:  # free names (aliases): no fixed entries
            assert not es, f"{group}: free-form group documented with entries"
            continue
        names = {n for e in es for n in e.names}
        # A subsection covering two groups documents the union of both.
        code = {k.name for g in covering[0]
                for k in (config_groups.get(g) or [])}
        if names != code:
            problems.append(
                f"{'/'.join(covering[0]) or 'top level'}: in config.c only "
                f"{sorted(code - names)}, in the page only "
                f"{sorted(names - code)}")
    assert not problems, "\n".join(problems)


def test_setting_types_and_connector_only(config_groups, conf5):
    docs = documented_settings(conf5)
    wrong = []
    for group, keys in config_groups.items():
        es = docs[[k for k in docs if group in k][0]]
        by_name = {e.names[0]: e for e in es}
        native = {k.name for k in config_groups.get("native") or []}
        for k in keys or []:
            e = by_name.get(k.name)
            if e is None:
                continue  # reported by the test above
            m = re.search(r"\(([^)]*)\)\s*$", e.tags[0])
            if not m or m.group(1) != KIND_WORDS[k.kind]:
                wrong.append(f"{group}.{k.name}: tag {e.tags[0]!r}, type "
                             f"({KIND_WORDS[k.kind]}) expected")
            only = "connector only" in e.text.lower()
            if group == "connector" and only != (k.name not in native):
                wrong.append(f"connector.{k.name}: 'Connector only' "
                             f"{'missing' if not only else 'wrong'}")
    assert not wrong, "\n".join(wrong)


def provider_presets() -> List[str]:
    """Preset names of etc/providers.conf: the groups inside `providers`
    (a libconfig file: comments dropped, literals skipped, depth counted)."""
    text = (REPO / "etc/providers.conf").read_text()
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"(#|//).*$", "", text, flags=re.M)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    m = re.search(r"\bproviders\s*[=:]\s*\{", text)
    assert m, "no providers group in etc/providers.conf"
    body = text[m.end():matching(text, m.end() - 1)]
    names, depth = [], 0
    for tok in re.finditer(r"([A-Za-z][\w-]*)\s*[=:]\s*\{|\{|\}", body):
        if tok.group(1) and depth == 0:
            names.append(tok.group(1))
        depth += 1 if tok.group(0).endswith("{") else -1
    return names


def test_presets_listed(conf5):
    if not (REPO / "etc/providers.conf").exists():
        pytest.skip("etc/providers.conf not written yet")
    code = set(provider_presets())
    page = {n for e in entries(conf5, "PRESETS") for n in e.names}
    assert code == page, (f"only in providers.conf: {sorted(code - page)}; "
                          f"only in the page: {sorted(page - code)}")


# --------------------------------------------------------------------------
# switchmailctl(8) and the commands table


def test_every_command_is_documented(ctl_commands, ctl8):
    """Each row, each subcommand its help synopsis lists ("queue
    run|flush|list") and each --option it names ("test [--route R]") is in
    a COMMANDS entry.  The synopsis is the help line before its first run
    of two spaces; subcommands are its words with '|' outside [...]."""
    es = entries(ctl8, "COMMANDS")
    tags = {t for e in es for t in e.tags}
    missing = []
    for name, help_text in ctl_commands.items():
        synopsis = re.split(r"\s{2,}", help_text.strip())[0]
        words = re.sub(r"\[[^\]]*\]", " ", synopsis).split()
        assert words[0] == name, f"help of {name}: {help_text!r}"
        subs = [w.split("|") for w in words[1:]
                if "|" in w and not w.startswith("-")]
        wanted = [f"{name} {s}" for alts in subs for s in alts] or [name]
        for w in wanted:
            if not any(t == w or t.startswith(w + " ") for t in tags):
                missing.append(w)
        text = " ".join(e.text for e in es if e.names[0] == name)
        for opt in re.findall(r"--[a-z][\w-]*", synopsis):
            if opt not in text:
                missing.append(f"{name} {opt}")
    assert not missing, f"not in switchmailctl.8 COMMANDS: {missing}"


def test_documented_commands_exist_or_say_not_yet(ctl_commands, ctl8):
    wrong = []
    for e in entries(ctl8, "COMMANDS"):
        name = e.names[0]
        marked = NOT_YET in e.text.lower()
        if name in ctl_commands and marked:
            wrong.append(f"{name} is in commands[]: drop 'Not in this "
                         f"version yet'")
        if name not in ctl_commands and not marked:
            wrong.append(f"{name} is not in commands[] and not marked "
                         f"'Not in this version yet'")
    assert not wrong, "\n".join(wrong)


def test_ctl_options(ctl_options, ctl8):
    documented = {n.strip() for e in entries(ctl8, "OPTIONS")
                  for t in e.tags for n in t.split(",")}
    documented = {d.split()[0] for d in documented if d}
    assert documented == ctl_options, (
        f"only in the code: {sorted(ctl_options - documented)}; "
        f"only in the page: {sorted(documented - ctl_options)}")


# --------------------------------------------------------------------------
# All pages


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_environment_variables(page):
    """Every *_ENV variable the programs read is in ENVIRONMENT of each page
    that has one (switchmail(8) reads only the configuration's), and every
    variable there exists."""
    doc = read_page(page)
    names = {n for e in entries(doc, "ENVIRONMENT") for n in e.names}
    variables = env_variables()
    assert names <= variables, f"unknown: {sorted(names - variables)}"
    assert "SWITCHMAIL_CONFIG" in names
    if page.name != "switchmail.8":
        assert names == variables, f"missing: {sorted(variables - names)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_has_no_warnings(page):
    out = subprocess.run(["groff", "-man", "-ww", "-z", str(page)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == "", out.stderr


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_man_renders_cleanly_in_80_columns(page, locale):
    """On a UTF-8 terminal and on a plain ASCII one (where glyphs such as
    a check mark do not exist and groff warns)."""
    env = {**MAN_ENV, "LANG": locale, "LC_ALL": locale}
    out = subprocess.run(["man", "--warnings=w", "-l", str(page)],
                         capture_output=True, text=True, timeout=30,
                         env=env)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    lines = out.stdout.splitlines()
    assert lines and "NAME" in lines, out.stdout[:500]
    long = [l for l in lines if len(l) > 80]
    assert not long, "lines over 80 columns:\n" + "\n".join(long)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_whatis_reads_the_name_line(page):
    out = subprocess.run(["lexgrog", str(page)], capture_output=True,
                         text=True, timeout=30)
    name = page.name.rsplit(".", 1)[0]
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'"{name} - ' in out.stdout, out.stdout


@pytest.mark.parametrize("page,sections", [
    ("switchmail.8", ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
                      "EXIT STATUS", "LIMITS", "ENVIRONMENT", "FILES",
                      "EXAMPLES", "SEE ALSO"]),
    ("switchmailctl.8", ["NAME", "SYNOPSIS", "OPTIONS", "COMMANDS",
                         "EXIT STATUS", "TROUBLESHOOTING", "EXAMPLES"]),
    ("switchmail.conf.5", ["NAME", "DESCRIPTION", "SETTINGS", "PRESETS",
                           "VALIDATION", "SECURITY", "GMAIL", "EXAMPLE"]),
])
def test_sections(page, sections):
    assert set(sections) <= set(read_page(SRC / page).sections)
