"""`bridge-runner resync DIR BRIDGE`: send every current user once more, at the next poll.

An on-demand backfill, like Debezium's snapshot signal, without losing the bridge's place:
the snapshot is kept and each of its users is marked (`Snapshots.request_resync`); the next
scan sends one `sync_trigger` per marked user it reads, as an `updated` event under a new id
(no `changedattributes` unless something did change), and each commit clears its users'
marks, so an interrupted scan leaves the rest for the next one. Users new to the pool are
`created` as always, deletions are found as always. Works with or without a runner.
"""

from __future__ import annotations

import argparse

from runner._kits.wording import plural, printable
from runner.cli.bridgestate import add_bridge_arguments, bridge_id, open_state
from runner.cli.exitcodes import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bridge_arguments(parser)


def run(args: argparse.Namespace) -> int:
    bridge = bridge_id(args)
    with open_state(args) as outbox:
        users = outbox.request_resync(bridge)
    print(
        f"resync of bridge {printable(bridge)}: {plural(users, 'user')} to send again at "
        "its next poll"
    )
    return EXIT_OK
