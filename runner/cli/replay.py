"""`bridge-runner replay DIR BRIDGE`: queue a bridge's parked events for delivery again.

An event the sink refused (a 4xx that is not retried) or gave up on, with no dead-letter
sink, is parked in the outbox and kept (`runner.delivery.deliverer`). Once the sink is
fixed, `replay` makes them pending again, with their original ids and seqs, so they go
before anything committed after them and a deduplicating sink still knows them. It works
with or without a runner: a stopped runner sends them when it starts, a running one at the
bridge's next poll (`runner.polling.stream.ScanStream.begin` wakes delivery). `--dry-run`
lists them and changes nothing.
"""

from __future__ import annotations

import argparse

from runner._kits.wording import plural, printable
from runner.cli.bridgestate import add_bridge_arguments, bridge_id, open_state
from runner.cli.exitcodes import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_bridge_arguments(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="list the parked events, change nothing"
    )


def run(args: argparse.Namespace) -> int:
    bridge = bridge_id(args)
    with open_state(args) as outbox:
        if args.dry_run:
            parked = outbox.parked(bridge)
            errors = outbox.last_errors(bridge, [event.seq for event in parked])
            for event in parked:
                attributes = event.attributes
                print(
                    f"{event.event_id}  {attributes.get('type')}  {attributes.get('time')}  "
                    f"{printable(errors.get(event.seq) or '')}"
                )
            print(f"{plural(len(parked), 'parked event')} of bridge {printable(bridge)} (dry run)")
            return EXIT_OK
        released = outbox.unpark(bridge)
    print(
        f"{plural(released, 'parked event')} of bridge {printable(bridge)} queued for "
        "delivery again, with their original ids"
    )
    return EXIT_OK
