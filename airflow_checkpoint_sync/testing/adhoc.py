"""Just enough of Feldera's ad-hoc SQL (``GET /v0/pipelines/{name}/query``) for restore drills to check a table.

Real Feldera runs ad-hoc queries with DataFusion over the tables' current contents. The sandbox answers the queries
a drill's check is made of, over the same contents:

- ``SELECT COUNT(*) [AS name] FROM t [WHERE col op value]``
- ``SELECT SUM(col) | MIN(col) | MAX(col) [AS name] FROM t [WHERE ...]``
- ``SELECT * | col, ... FROM t [WHERE ...] [ORDER BY col [ASC|DESC]] [LIMIT n]``

with ``op`` one of ``= != <> < <= > >=`` and ``value`` a number or a 'string'. Anything else is refused as Feldera
refuses what DataFusion cannot plan: 400 ``AdHocQueryError``.
"""

from __future__ import annotations

import json
import operator
import re
from typing import TYPE_CHECKING, Any

from .errors import FelderaError
from .sql import normalize_identifier

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_]*)'
_QUERY = re.compile(
    rf"^\s*select\s+(?P<what>.+?)\s+from\s+(?P<table>{_IDENT})"
    rf"(?:\s+where\s+(?P<col>{_IDENT})\s*(?P<op>=|!=|<>|<=|>=|<|>)\s*(?P<value>'[^']*'|-?\d+(?:\.\d+)?))?"
    rf"(?:\s+order\s+by\s+(?P<order>{_IDENT})(?:\s+(?P<dir>asc|desc))?)?"
    r"(?:\s+limit\s+(?P<limit>\d+))?\s*;?\s*$",
    re.I | re.S,
)
_AGGREGATE = re.compile(
    rf"^(?P<fn>count|sum|min|max)\s*\(\s*(?P<arg>\*|{_IDENT})\s*\)(?:\s+as\s+(?P<alias>{_IDENT}))?$", re.I
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def query_error(error: str) -> FelderaError:
    """Feldera's answer to an ad-hoc query it cannot run."""
    return FelderaError(400, "AdHocQueryError", f"Error during query processing: {error}.", {"error": error})


def run_query(sql: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The rows ``sql`` gives over ``tables`` (table name to its rows), or a FelderaError as Feldera answers."""
    match = _QUERY.match(sql)
    if match is None:
        raise query_error(f"SQL error: the sandbox runs only simple SELECTs, not {sql.strip()[:80]!r}")
    table = normalize_identifier(match["table"])
    if table not in tables:
        raise query_error(f"Error during planning: table '{table}' not found")
    rows = [dict(row) for row in tables[table]]
    if match["col"]:
        column, compare = normalize_identifier(match["col"]), _OPS[match["op"]]
        wanted = _literal(match["value"])
        rows = [row for row in rows if row.get(column) is not None and compare(row[column], wanted)]
    what = match["what"].strip()
    aggregate = _AGGREGATE.match(what)
    if aggregate:
        return [_aggregate(aggregate, rows)]
    if match["order"]:
        key = normalize_identifier(match["order"])
        rows.sort(key=lambda row: (row.get(key) is None, row.get(key)), reverse=(match["dir"] or "").lower() == "desc")
    if match["limit"]:
        rows = rows[: int(match["limit"])]
    if what == "*":
        return rows
    columns = [normalize_identifier(c.strip()) for c in what.split(",")]
    if not all(re.fullmatch(_IDENT, c.strip()) for c in what.split(",")):
        raise query_error(f"SQL error: the sandbox selects only '*', columns or one aggregate, not {what!r}")
    return [{column: row.get(column) for column in columns} for row in rows]


def as_json_lines(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """``format=json``: one JSON object per row, one per line."""
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1]
    return float(text) if "." in text else int(text)


def _aggregate(match: re.Match[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    fn, arg = match["fn"].lower(), match["arg"]
    name = normalize_identifier(match["alias"]) if match["alias"] else f"{fn}({arg.lower()})"
    if arg == "*":
        if fn != "count":
            raise query_error(f"SQL error: {fn}(*) is not valid")
        return {name: len(rows)}
    column = normalize_identifier(arg)
    values = [row[column] for row in rows if row.get(column) is not None]
    if fn == "count":
        return {name: len(values)}
    if not values:
        return {name: None}
    total: Any = sum(values) if fn == "sum" else min(values) if fn == "min" else max(values)
    return {name: total}
