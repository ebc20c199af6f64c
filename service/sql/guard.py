"""What `totesys sql` accepts: one read-only SELECT (or WITH … SELECT) over the star tables.

Polars' SQL has statements that change the session (CREATE TABLE, DROP TABLE) and table
functions that read any file the process can (`read_csv`, `read_parquet`, `read_ipc`,
`read_json`). The query is therefore checked twice:

1. `check_query`, before Polars sees it: a small lexer (comments, strings, quoted identifiers,
   numbers split as Polars splits them: `0xinto` is the hex literal `0x` and the word INTO) that
   rejects what it cannot lex exactly as Polars' parser does (backslashes, `$` quoting, backtick
   identifiers, nested block comments, `#`), more than one statement, a first word other than
   SELECT/WITH, any word that writes or changes the session, `WITH RECURSIVE` (it can run without
   end), any `read_*`/`scan_*` name, and a query too large to plan: over `MAX_QUERY_CHARS`
   characters, `MAX_TOKENS` tokens, `MAX_OPERATORS` operators or `MAX_DEPTH` nested brackets
   (Polars' planner is quadratic or worse in an expression's size, and overflows its stack on a
   6,000-term sum: it would crash the process, not raise).
2. `check_plan`, before anything is collected: the plan as written may scan only the registered
   tables (Delta tables: `PythonDataset` scans, which only the engine creates), and every scan
   of the optimised plan must be a Parquet scan whose path, normalised (`..` resolved), lies
   inside one of the tables' folders. The engine checks every file of every table it registers
   the same way (service/sql/engine.py): the optimised plan names only a scan's first file.

The lexer is deliberately strict: when in doubt it refuses, with one line saying why.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


class UnsafeQuery(ValueError):
    """The query is not a single read-only SELECT over the tables."""


# Words that write, change the session or leave the query language, wherever they appear.
FORBIDDEN_WORDS = frozenset(
    {
        "alter",
        "attach",
        "call",
        "copy",
        "create",
        "deallocate",
        "delete",
        "describe",
        "detach",
        "drop",
        "execute",
        "explain",
        "export",
        "grant",
        "import",
        "insert",
        "install",
        "into",
        "load",
        "merge",
        "pragma",
        "prepare",
        "revoke",
        "set",
        "show",
        "truncate",
        "update",
        "use",
        "vacuum",
    }
)
# How large a query may be before Polars sees it. The named queries use well under a tenth of
# each; a 250-operator expression plans in milliseconds (1,000 took 0.3 s to 2 s, 3,000 took
# 52 s, 6,000 crashed the process).
MAX_QUERY_CHARS = 100_000
MAX_TOKENS = 10_000
MAX_OPERATORS = 250
MAX_DEPTH = 32
OPERATOR_SYMBOLS = frozenset({"+", "-", "*", "/", "%", "||", "=", "<", ">", "<=", ">=", "<>", "!="})
OPERATOR_WORDS = frozenset({"and", "or", "when", "between", "like", "ilike"})
# Polars' file-reading table functions are read_csv, read_parquet, read_ipc and read_json; any
# name of that shape is refused so a future one is refused too.
FILE_FUNCTION = re.compile(r"^(read|scan)_", re.IGNORECASE)
# Line comments end at \r as well as \n (stricter than Polars, which ends them at \n only) and
# only space, tab, CR and LF count as whitespace: other control or separator characters are
# refused outside comments and strings.
# Characters whose meaning differs between SQL dialects' lexers (escapes, dollar quoting,
# backtick identifiers, `#` comments, `&` in U&'…'): refused outside string literals.
_REFUSED_CHARS = {
    "\\": "a backslash",
    "$": "'$'",
    "`": "a backtick",
    "#": "'#'",
}

_TOKEN = re.compile(
    r"""
    (?P<space>[\ \t\r\n]+)
  | (?P<line_comment>--[^\r\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>0x[0-9A-Fa-f]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<symbol><=|>=|<>|!=|\|\||::|[-+*/%=<>(),.;\[\]{}:?!|^~@&])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str  # word | quoted | string | number | symbol
    text: str  # a word lower-cased, a quoted identifier unquoted; else as written
    position: int


def tokens(sql: str) -> list[Token]:
    """The query's significant tokens (comments and spaces dropped), or UnsafeQuery."""
    if len(sql) > MAX_QUERY_CHARS:
        raise UnsafeQuery(
            f"the query is too large to plan: {len(sql):,} characters (at most {MAX_QUERY_CHARS:,})"
        )
    found: list[Token] = []
    position = 0
    while position < len(sql):
        char = sql[position]
        if char in _REFUSED_CHARS:
            raise UnsafeQuery(f"{_REFUSED_CHARS[char]} at character {position + 1} is not allowed")
        match = _TOKEN.match(sql, position)
        if match is None:
            if sql.startswith("/*", position):
                raise UnsafeQuery(f"unterminated comment at character {position + 1}")
            if char in "'\"":
                raise UnsafeQuery(f"unterminated quote at character {position + 1}")
            raise UnsafeQuery(f"unexpected character {char!r} at character {position + 1}")
        kind = match.lastgroup
        text = match.group()
        assert kind is not None
        if kind == "block_comment" and "/*" in text[2:]:
            # Polars nests block comments, other lexers do not: refuse rather than guess.
            raise UnsafeQuery(f"nested comment at character {position + 1} is not allowed")
        if kind == "string" and any(c in text for c in "\\"):
            raise UnsafeQuery(f"a backslash at character {position + 1} is not allowed")
        if kind == "word":
            found.append(Token(kind, text.lower(), position))
        elif kind == "quoted":
            found.append(Token(kind, text[1:-1].replace('""', '"'), position))
        elif kind not in {"space", "line_comment", "block_comment"}:
            found.append(Token(kind, text, position))
        position = match.end()
    return found


def check_query(sql: str) -> set[str]:
    """Refuse anything but one read-only SELECT/WITH statement; return the identifiers it uses
    (lower-case words and quoted names), from which the caller picks the tables to open."""
    significant = tokens(sql)
    if significant and significant[-1].text == ";":
        significant = significant[:-1]
    if not significant:
        raise UnsafeQuery("the query is empty")
    for token in significant:
        if token.text == ";" and token.kind == "symbol":
            raise UnsafeQuery(
                f"only one statement is allowed (';' at character {token.position + 1})"
            )
    check_size(significant)
    first = next((t for t in significant if t.text != "("), significant[0])
    if first.kind != "word" or first.text not in {"select", "with"}:
        raise UnsafeQuery(f"only SELECT (or WITH … SELECT) queries are allowed, not {first.text!r}")
    names: set[str] = set()
    for token in significant:
        if token.kind not in {"word", "quoted"}:
            continue
        if token.kind == "word" and token.text == "recursive":
            raise UnsafeQuery(
                "WITH RECURSIVE is not allowed: a recursive query can run without end "
                "(queries read the star tables)"
            )
        if token.kind == "word" and token.text in FORBIDDEN_WORDS:
            raise UnsafeQuery(f"{token.text.upper()} is not allowed: queries are read-only")
        if FILE_FUNCTION.match(token.text):
            raise UnsafeQuery(
                f"{token.text!r} is not allowed: queries read only the warehouse tables"
            )
        names.add(token.text if token.kind == "quoted" else token.text.lower())
    return names


def check_size(significant: list[Token]) -> None:
    """Refuse a query too large to plan (see the module docstring)."""
    if len(significant) > MAX_TOKENS:
        raise UnsafeQuery(
            f"the query is too large to plan: {len(significant):,} tokens (at most {MAX_TOKENS:,})"
        )
    operators = sum(
        1
        for t in significant
        if (t.kind == "symbol" and t.text in OPERATOR_SYMBOLS)
        or (t.kind == "word" and t.text in OPERATOR_WORDS)
    )
    if operators > MAX_OPERATORS:
        raise UnsafeQuery(
            f"the query is too large to plan: {operators:,} operators (at most {MAX_OPERATORS})"
        )
    depth = 0
    for token in significant:
        if token.kind == "symbol" and token.text in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise UnsafeQuery(
                    f"the query nests brackets more than {MAX_DEPTH} deep "
                    f"(character {token.position + 1})"
                )
        elif token.kind == "symbol" and token.text in ")]}":
            depth -= 1


_SCAN = re.compile(r"^\s*(?P<kind>[A-Za-z]+) SCAN \[(?P<first>[^,\]]*)")


def normalised(path: str) -> str:
    """A path or URI with `.`, `..` and repeated slashes resolved (`s3://b/t/../x` is
    `s3://b/x`), so a prefix comparison means "inside"."""
    scheme, sep, rest = path.partition("://")
    if not sep:
        scheme, rest = "", path
    if scheme == "file":
        scheme, sep = "", ""
    if sep:  # s3://bucket/key: the bucket stays, the key is normalised
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}/{posixpath.normpath('/' + key).lstrip('/')}"
    return posixpath.normpath(rest)


def inside(path: str, folders: list[str]) -> bool:
    """Whether `path`, normalised, lies inside one of `folders` (normalised too)."""
    target = normalised(path)
    return any(target.startswith(normalised(folder).rstrip("/") + "/") for folder in folders)


def check_plan(plan: str, allowed_prefixes: list[str], written: str | None = None) -> None:
    """Every scan in the optimised plan (`LazyFrame.explain()`) reads Parquet inside one of
    `allowed_prefixes` (the registered tables' folders), paths normalised; and every scan of the
    plan as written (`explain(optimized=False)`), if given, is a registered Delta table's
    (`PythonDataset`). Anything else is UnsafeQuery."""
    for line in (written or "").splitlines():
        match = _SCAN.match(line)
        if match is not None and match.group("kind") != "PythonDataset":
            source = match.group("first").strip()
            raise UnsafeQuery(f"the query would read {source!r}: only the warehouse tables")
    for line in plan.splitlines():
        match = _SCAN.match(line)
        if match is None:
            continue
        source = match.group("first").strip()
        if match.group("kind") == "Parquet" and source == "":
            continue  # every file was skipped by its statistics: nothing is read
        if match.group("kind") != "Parquet" or not inside(source, allowed_prefixes):
            raise UnsafeQuery(f"the query would read {source!r}: only the warehouse tables")
