"""Work deferred to the end of a unit of work (infrastructure layer).

A ticket changed three times while one fault event is applied (created, correlated,
assigned) needs its SLA timers planned and its status sent to the store once, from its final
state, not three times. A service registers that work under a key (`defer`): a later
registration under the same key updates the same entry. It runs when the unit ends:

- `unit(session)`: a savepoint (one inbound message, one timer) that settles its deferred
  work before it is released; if the unit fails, what it deferred is dropped with its
  changes, and what was deferred before it is kept as it was;
- any commit: `Database` settles before committing (`settle` is a `before_commit` listener),
  so a request handler that changed a ticket needs nothing more.

Entries run in the order they were first deferred; one may defer more (run in the same pass).
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy.orm import Session

_KEY = "deferred_work"


class Deferred(Protocol):
    """One piece of deferred work; `copy.copy` must give an independent entry (savepoint rollback)."""

    def __call__(self, session: Session) -> None: ...


def pending(session: Session) -> dict[Hashable, Deferred]:
    """The session's deferred work by key (a live dict: look up an entry to update it)."""
    work: dict[Hashable, Deferred] = session.info.setdefault(_KEY, {})
    return work


def defer(session: Session, key: Hashable, work: Deferred) -> None:
    pending(session)[key] = work


def settle(session: Session) -> None:
    """Run the deferred work now, in this transaction (each entry once, then forgotten)."""
    work = session.info.get(_KEY)
    while work:
        key = next(iter(work))
        work.pop(key)(session)


def discard(session: Session) -> None:
    session.info.pop(_KEY, None)


@contextmanager
def unit(session: Session) -> Iterator[None]:
    """A savepoint whose deferred work runs before it is released (and is dropped if it fails)."""
    before = {key: copy.copy(entry) for key, entry in pending(session).items()}
    try:
        with session.begin_nested():
            yield
            settle(session)
    except BaseException:
        session.info[_KEY] = before
        raise
