"""The server's schema migrations (Alembic): ``env.py`` and the revisions in ``versions/``.

Run through :mod:`ipyassistant.server.schema`, never by hand; see there for how to add one.
"""
