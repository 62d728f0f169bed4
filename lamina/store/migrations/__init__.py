"""Alembic migrations of the metadata store, shipped inside the package.

The store upgrades its database to the head revision every time it is opened
(:func:`upgrade_to_head`), so no ``alembic.ini`` is needed anywhere: the configuration is built
here, in code, pointing at this package's own directory.

To write a new revision (a developer's task, not a runtime one)::

    from alembic import command
    from lamina.store.migrations import alembic_config
    command.revision(alembic_config("sqlite:////tmp/scratch.db"), message="add aliases",
                     rev_id="0002")

then write its ``upgrade()`` by hand with generic types, and mirror the change in
``lamina/store/schema.py`` (``tests/store/test_migrations.py`` checks that the two agree).

Features that own separate tables (aliases and layers, IAM, the async event queue...) each grow
their own *branch* of revisions from ``0001`` (``down_revision = "0001"``, a ``branch_labels``
of their own), so that parts written side by side never fight over one linear chain; the store
upgrades to every head. A revision that needs two branches names both in ``depends_on``.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

# The "package:path" form lets Alembic find the scripts wherever lamina is installed.
SCRIPT_LOCATION = "lamina.store:migrations"

# Alembic publishes the running migration through module-level proxies (``alembic.context``,
# ``alembic.op``): two upgrades in one process at once would share them, so they take turns.
_UPGRADE_LOCK = threading.Lock()


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for this package's scripts. With ``connection`` the migrations
    run on it, inside the caller's transaction; otherwise ``env.py`` connects to ``url``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # ConfigParser interpolates "%", which may appear in a URL's password.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: sa.Connection) -> None:
    """Bring the database behind ``connection`` to the newest revision, inside the transaction
    the caller has begun: a failed upgrade leaves nothing half-applied, and two processes
    opening the same fresh database one after the other each see a consistent schema."""
    with _UPGRADE_LOCK:
        command.upgrade(alembic_config(connection=connection), "heads")
