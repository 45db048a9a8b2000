"""`bridge-runner schema NAME`: print one of the JSON Schemas shipped in the package.

Editors point `# yaml-language-server: $schema=...` at a saved copy (`bridge-runner schema bridge
> bridge.schema.json`), and tools validate status files or event data against the others. NAME is
a short name (`bridge`, `triggermesh`, `status`, `sync_trigger`, `user_deleted`) or an event's
full CloudEvents type (`com.amazon.cognito-idp.sync_trigger`).
"""

from __future__ import annotations

import argparse
import sys

from runner import schemas
from runner.errors import UsageError


def known_names_text() -> str:
    aliases = ", ".join(sorted(schemas.SCHEMA_ALIASES))
    return f"{', '.join(schemas.schema_names())} (or an event type: {aliases})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help=f"the schema: {known_names_text()}")


def run(args: argparse.Namespace) -> int:
    name: str = args.name
    try:
        text = schemas.schema_text(name)
    except KeyError:
        raise UsageError(f"unknown schema {name!r}; known schemas: {known_names_text()}") from None
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
