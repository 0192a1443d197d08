"""What changed, for caches of what the API reads most.

On PostgreSQL row triggers NOTIFY ``aether_app_changes`` with a topic: the app id whenever one
of its deployments is inserted, updated or deleted, or the app itself is deleted; and
``artifact:<digest>`` whenever a stored artifact is updated or deleted. So every process
serving the API hears about writes made anywhere (a separate ``aether worker``, another
replica, a person at ``psql``). PostgreSQL sends a notification only once the writing
transaction commits, and folds repeats of one payload within a transaction into one. SQLite
has no such feed; callers there do not cache.
"""

from __future__ import annotations

from aether.store.database import Database

CHANNEL = "aether_app_changes"
_TRIGGER_LOCK_ID = 0x4145544843  # serialises processes creating the triggers at once


def artifact_topic(digest: str) -> str:
    return f"artifact:{digest}"


# IF branches, not one CASE: PL/pgSQL plans each statement when it first runs, and a CASE
# naming OLD.app_id would fail to plan for an applications row.
_FUNCTION = (
    "CREATE OR REPLACE FUNCTION aether_notify_change() RETURNS trigger AS $body$"
    " BEGIN"
    " IF TG_TABLE_NAME = 'applications' THEN"
    f" PERFORM pg_notify('{CHANNEL}', OLD.id);"
    " ELSIF TG_TABLE_NAME = 'artifacts' THEN"
    f" IF OLD.status = 'stored' THEN PERFORM pg_notify('{CHANNEL}', 'artifact:' || OLD.digest);"
    " END IF;"
    " ELSIF TG_OP = 'DELETE' THEN"
    f" PERFORM pg_notify('{CHANNEL}', OLD.app_id);"
    " ELSE"
    f" PERFORM pg_notify('{CHANNEL}', NEW.app_id);"
    " END IF;"
    " RETURN NULL;"
    " END $body$ LANGUAGE plpgsql"
)
_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER aether_deployment_changed"
    " AFTER INSERT OR UPDATE OR DELETE ON deployments"
    " FOR EACH ROW EXECUTE FUNCTION aether_notify_change()",
    "CREATE OR REPLACE TRIGGER aether_application_changed"
    " AFTER UPDATE OR DELETE ON applications"
    " FOR EACH ROW EXECUTE FUNCTION aether_notify_change()",
    "CREATE OR REPLACE TRIGGER aether_artifact_changed"
    " AFTER UPDATE OR DELETE ON artifacts"
    " FOR EACH ROW EXECUTE FUNCTION aether_notify_change()",
)


_TRIGGER_NAMES = tuple(statement.split()[4] for statement in _TRIGGERS)


async def install_triggers(db: Database) -> None:
    """PostgreSQL: create or update the triggers (``aether migrate`` runs this after the
    numbered migrations, whose one-statement-per-';' files cannot hold a function body)."""
    if db.dialect != "postgresql":
        return
    async with db.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(:id)", {"id": _TRIGGER_LOCK_ID})
        await tx.execute(_FUNCTION)
        for statement in _TRIGGERS:
            await tx.execute(statement)


async def feed_available(db: Database) -> bool:
    """True when every trigger is in place (PostgreSQL, migrated); a cache must not trust
    the feed otherwise, as some writes would change nothing it hears."""
    if db.dialect != "postgresql":
        return False
    found = await db.fetch_value(
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.relnamespace = to_regnamespace(current_schema())"
        " AND t.tgname IN (" + ", ".join(f"'{name}'" for name in _TRIGGER_NAMES) + ")"
    )
    return bool(found == len(_TRIGGER_NAMES))
