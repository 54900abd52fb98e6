"""Just enough SQL for the sandbox: which tables a program declares, and whether it "compiles".

The sandbox's pipelines are small stateful programs: each declared table keeps the records pushed into it, and that
state is what checkpoints capture and restores bring back. Views are accepted and ignored.
"""

from __future__ import annotations

import hashlib
import re

_CREATE_TABLE = re.compile(r"create\s+table\s+(?:if\s+not\s+exists\s+)?(\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_]*)", re.I)
_STATEMENT_START = re.compile(r"^\s*(create|declare|--)", re.I)


def normalize_identifier(name: str) -> str:
    """Feldera's identifier rule: unquoted names are case-insensitive (lower-cased), quoted ones are exact."""
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name.lower()


def declared_tables(program_code: str) -> list[str]:
    """The tables a program declares, in order, with Feldera's identifier normalisation."""
    return [normalize_identifier(m.group(1)) for m in _CREATE_TABLE.finditer(program_code)]


def compile_errors(program_code: str) -> list[str]:
    """Statements the sandbox's "compiler" rejects: anything that is not a CREATE (or a comment)."""
    errors = []
    for statement in _strip_comments(program_code).split(";"):
        if statement.strip() and not _STATEMENT_START.match(statement):
            errors.append(f"Error parsing SQL: unexpected statement '{statement.strip()[:60]}'")
    return errors


def program_fingerprint(program_code: str) -> int:
    """A stable 63-bit fingerprint of the program, as Feldera records in each checkpoint."""
    digest = hashlib.sha256(" ".join(program_code.split()).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _strip_comments(program_code: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in program_code.splitlines())
