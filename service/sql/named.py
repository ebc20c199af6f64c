"""The named queries: one `.sql` file each in service/sql/named/, shared by `totesys sql --named`,
the tests and the Athena named queries of the SAM template (infra/athena.py).

Each file starts with comment lines: the first is the title, the rest the description, and a
`-- parameter: <name> <integer|timestamp|varchar>` line per `?` placeholder, in order. The SQL
keeps to what Polars SQL and Athena (Trino) both run the same way. In Athena the `?` are
execution parameters (the console asks for them: `42`, `'2024-11-14 10:30:00'`, `'GBP'`);
locally `bind` writes the values in as literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.sql.guard import UnsafeQuery, tokens

NAMED_DIR = Path(__file__).resolve().parent / "named"
PARAMETER_TYPES = ("integer", "timestamp", "varchar")
_PARAMETER = re.compile(r"^--\s*parameter:\s*([a-z_][a-z0-9_]*)\s+(\w+)\s*$")


@dataclass(frozen=True)
class NamedQuery:
    name: str  # the file's stem
    title: str
    description: str
    parameters: tuple[tuple[str, str], ...]  # (name, type) per `?`, in order
    sql: str  # the whole file, comments included (Athena shows them)

    @property
    def path(self) -> Path:
        return NAMED_DIR / f"{self.name}.sql"


def _parse(path: Path) -> NamedQuery:
    text = path.read_text(encoding="utf-8")
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    parameters = []
    prose = []
    for line in header:
        match = _PARAMETER.match(line)
        if match:
            if match.group(2) not in PARAMETER_TYPES:
                raise ValueError(f"{path.name}: parameter type {match.group(2)!r} is unknown")
            parameters.append((match.group(1), match.group(2)))
        else:
            prose.append(line.removeprefix("--").strip())
    if not prose:
        raise ValueError(f"{path.name}: the first line must be a `-- title` comment")
    placeholders = sum(1 for t in tokens(text) if t.text == "?" and t.kind == "symbol")
    if placeholders != len(parameters):
        raise ValueError(
            f"{path.name}: {placeholders} '?' placeholders but {len(parameters)} parameter lines"
        )
    return NamedQuery(
        name=path.stem,
        title=prose[0],
        description=" ".join(line for line in prose[1:] if line),
        parameters=tuple(parameters),
        sql=text,
    )


def named_queries() -> dict[str, NamedQuery]:
    """Every named query, by name (sorted)."""
    return {q.name: q for q in (_parse(p) for p in sorted(NAMED_DIR.glob("*.sql")))}


def _literal(name: str, kind: str, value: str) -> str:
    try:
        if kind == "integer":
            return str(int(value))
        if kind == "timestamp":
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:  # naive UTC, as the tables store it
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return "'" + moment.isoformat(sep=" ") + "'"
    except ValueError:
        raise UnsafeQuery(f"parameter {name}: {value!r} is not a valid {kind}") from None
    return "'" + value.replace("'", "''") + "'"


def bind(query: NamedQuery, values: list[str]) -> str:
    """The query's SQL with its `?` replaced by the values as literals (typed per parameter)."""
    if len(values) != len(query.parameters):
        wanted = ", ".join(f"{n} ({t})" for n, t in query.parameters) or "none"
        raise UnsafeQuery(
            f"{query.name} takes {len(query.parameters)} parameter(s): {wanted}; got {len(values)}"
        )
    marks = [t.position for t in tokens(query.sql) if t.text == "?" and t.kind == "symbol"]
    sql = query.sql
    # Right to left, so the earlier positions stay valid.
    for position, (name, kind), value in reversed(
        list(zip(marks, query.parameters, values, strict=True))
    ):
        sql = sql[:position] + _literal(name, kind, value) + sql[position + 1 :]
    return sql
