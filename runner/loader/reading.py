"""Reading a bridge file safely: regular files only, never blocking, at most 1 MiB.

A FIFO or a device swapped in for a bridge file is a Problem, not a hang; a file over the
limit is refused before it is read whole, yet still identified by the digest of its bytes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from runner._kits.safefile import open_regular
from runner.loader.yamlsafe import MAX_FILE_BYTES
from runner.model import Problem


@dataclass(frozen=True, slots=True)
class Unread:
    """Why a bridge file was not read, and the digest of its bytes when they were seen."""

    problem: Problem
    file_digest: str | None = None


def read_bridge_file(path: Path, display: str) -> bytes | Unread:
    """The bytes of the bridge file at `path`, or why not (`display` names it in the Problem)."""
    try:
        # Never blocks, reads regular files only: a FIFO swapped in is a Problem, not a hang.
        with open_regular(path, follow_symlinks=True) as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_FILE_BYTES:
                # Refused before reading it all; the digest still identifies the content.
                digest = hashlib.sha256()
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
                message = f"file is too large: {size:,} bytes (bridge files are limited to 1 MiB)"
                return Unread(Problem(display, None, None, "", message), digest.hexdigest())
            return stream.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Unread(Problem(display, None, None, "", f"cannot read the file: {reason}"))
