"""Who a request acts for: the :class:`Caller` its key identifies.

Every object row has an ``owner``: the name of the key that created it (NULL for the server's
own key). A transaction is opened for a caller (``store.read(caller)``), and the store limits
what it reads, lists, changes and deletes to the caller's objects; an admin sees them all.

The caller is passed explicitly, from the authentication dependency to the route to the
store, rather than kept in a context variable: the run engine's tasks, started from a request,
would inherit such a variable, and they act for the server (they read the thread's assistant
and files whoever started the run), not for the person whose request started them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SERVER", "Caller"]


@dataclass(frozen=True)
class Caller:
    """A key's identity: ``owner`` stamps what it creates; an ``admin`` sees every object."""

    owner: str | None
    admin: bool


#: The server itself, and the key given with ``--api-key`` / ``IPYASSISTANT_API_KEY``: an
#: admin whose objects have no owner.
SERVER = Caller(owner=None, admin=True)
