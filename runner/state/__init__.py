"""State: the one SQLite database a runner keeps (`<state-dir>/state.sqlite`).

The store (connection, pragmas, schema, transactions: `store`), each bridge's snapshot of its
pool (`snapshots`), the outbox (events waiting for their sink, parked, dead-lettered:
`outbox`, whose `Outbox` is the whole file in one object), retention (`retention`), the
interface delivery codes against (`ports`), stored JSON kept as text, and the lock that
keeps a second runner off the same state directory. Nothing here imports the stages above
it: what polling hands the outbox is plain data (`runner.model`) or described by Protocols.
"""
