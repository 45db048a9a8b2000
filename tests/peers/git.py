"""Real git for tests: an environment that ignores the machine's git configuration, and one
call that runs git and returns what it printed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# No global or system config (a developer's hooks, signing, default branch) may change what
# the tests see; commits get a fixed author.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(cwd: Path, *args: str) -> str:
    """Run `git ARGS` in `cwd`; its stdout, stripped. CalledProcessError when it fails."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()
