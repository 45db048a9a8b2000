"""Opening files that anyone with a commit could have put in the bridges directory.

A bridges directory comes from git, and git stores FIFOs' lookalikes (symlinks to `/dev/zero`,
to a FIFO elsewhere, to a socket) as happily as bridges. One rule for every reader of a bridge,
status or runner-record file:

- the open never blocks: `O_NONBLOCK` (a FIFO with no writer opens at once instead of waiting
  forever), `O_NOCTTY` (a terminal never becomes ours);
- only a regular file is read: after the open, `fstat` decides, and anything else (FIFO,
  character or block device, socket, directory) is `NotRegularFile`, an `OSError` whose
  `strerror` is "not a regular file";
- links are not followed unless the caller says so (`O_NOFOLLOW`: a link is refused with
  "is a symbolic link"). Bridge files follow them (discovery already checked that they stay
  inside the directory, and a ConfigMap mount is made of them); status files and runner
  records never do, as the runner writes them itself and always as regular files;
- a read is capped: more than `limit` bytes is `FileTooLarge`, and no more than `limit + 1`
  bytes are ever read, whatever the size says (a file can grow meanwhile, `/proc` files
  say 0).

A regular file on a stalled network mount can still block a `read`; callers therefore read
off the event loop (`asyncio.to_thread`), as every reader of these files does.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class NotRegularFile(OSError):
    """The path names a FIFO, device, socket or directory: never read."""


class FileTooLarge(OSError):
    """The file holds more bytes than the reader accepts (`size`: as far as was read)."""

    def __init__(self, path: Path, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"file is too large ({size:,} bytes, at most {limit:,})")
        self.filename = str(path)
        self.size = size
        self.limit = limit


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def open_regular(path: Path, *, follow_symlinks: bool = False) -> BinaryIO:
    """`path` opened for reading in binary, if it is a regular file; never blocks on the open.

    Raises `NotRegularFile` for anything else, `OSError` (`ELOOP`, strerror "is a symbolic
    link") for a link when `follow_symlinks` is false, and the open's own `OSError`s.
    """
    flags = _FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(path):
            raise OSError(errno.ELOOP, "is a symbolic link", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _kind(mode)
            what = "not a regular file" + ("" if kind == "not a regular file" else f" ({kind})")
            raise NotRegularFile(errno.EINVAL, what, str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path, *, limit: int, follow_symlinks: bool = False) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them (see `open_regular`).

    Raises `FileTooLarge` when the file holds more than `limit` bytes.
    """
    with open_regular(path, follow_symlinks=follow_symlinks) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise FileTooLarge(path, size, limit)
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, len(data), limit)
    return data
