"""All SQL lives here: the database adapters, migrations and the queries per resource.

SQLite (embedded default) and PostgreSQL (production) sit behind one async interface,
:class:`aether.store.database.Database`; query modules write portable SQL with ``:name``
parameters and both backends run the same migrations. Callers: ``aether.server`` (route
handlers), ``aether.worker`` (the reconcile loop) and the operator commands.
"""
