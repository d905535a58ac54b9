"""The reply lifecycle, one module per step:

- `turns`: validate a `send`, store the user's message and the reply placeholder, build the prompt.
- `generation`: the running reply: stream, coalesce, publish, checkpoint, one final write.
- `events`: every event and frame, typed, and the only place they are built.
- `relay`: the sans-I/O coalescer and per-socket relay cursor.
- `hub`: the in-process fan-out to sockets, `stop`/`sync` routing, and the repair watchdog.
- `feed`: what one socket is sent: per-reply cursors, a bounded outbox, one writer.
- `bus`: the events' way between processes (Redis pub/sub), or none for one process.
- `sweep`: replies whose process died end `interrupted`, keeping their text.

Views and the consumer call these; they raise `Refused` and never speak frames.
"""
