"""What every vinyl Django backend shares.

A vinyl ``DatabaseWrapper`` never opens a connection of its own. Its
connection and its transaction flags belong to the engine scope that the
current task is running in (``vinyl.engine.scope``); with no scope bound, the
wrapper can still compile SQL but refuses to execute it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Sequence

from django.db import DataError, IntegrityError
from django.db.transaction import TransactionManagementError
from django.db.utils import DatabaseErrorWrapper
from sqlalchemy.engine import URL

from vinyl._backend.testdb import creation_class, find_twin, follow_twin
from vinyl.engine.engines import DriverCursor, EngineConfig, cached_facts
from vinyl.engine.scope import Scope, bound_scope
from vinyl import _compat, _querylog
from vinyl.exceptions import SyncConnectionError, django_error

# The wrapper attributes that describe a connection's transaction. They live
# in the scope, so tasks that happen to share a wrapper object never see each
# other's state.
_SCOPED_DEFAULTS: dict[str, Any] = {
    "autocommit": False,
    "in_atomic_block": False,
    "savepoint_state": 0,
    "savepoint_ids": list,
    "atomic_blocks": list,
    "commit_on_exit": True,
    "rollback_exc": None,
    "closed_in_transaction": False,
    "run_on_commit": list,
    "run_commit_hooks_on_set_autocommit_on": False,
    "errors_occurred": False,
    "health_check_done": False,
    "close_at": None,
}


def _new_state() -> SimpleNamespace:
    return SimpleNamespace(
        **{name: (value() if callable(value) else value) for name, value in _SCOPED_DEFAULTS.items()}
    )


class _ScopedAttribute:
    """A wrapper attribute stored in the state of the bound scope."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, wrapper: Any, owner: type | None = None) -> Any:
        if wrapper is None:
            return self
        return getattr(wrapper._vinyl_state(), self.name)

    def __set__(self, wrapper: Any, value: Any) -> None:
        setattr(wrapper._vinyl_state(), self.name, value)


class _LevelNeedsRollback:
    """``wrapper.needs_rollback``: the flag of the bound transaction level.

    A savepoint level that rolls back takes its flag with it, so an error
    caught inside a nested ``vinyl.atomic`` block does not doom the outer one.
    """

    def __get__(self, wrapper: Any, owner: type | None = None) -> Any:
        if wrapper is None:
            return self
        scope = bound_scope(wrapper.alias)
        return scope.needs_rollback if scope is not None else False

    def __set__(self, wrapper: Any, value: Any) -> None:
        scope = bound_scope(wrapper.alias)
        if scope is not None and not wrapper.__dict__.get("_vinyl_initializing"):
            scope.needs_rollback = bool(value)


class _BoundConnection:
    """``wrapper.connection``: the driver connection of the bound scope."""

    def __get__(self, wrapper: Any, owner: type | None = None) -> Any:
        if wrapper is None:
            return self
        scope = bound_scope(wrapper.alias)
        return scope.dbapi_connection() if scope is not None else None

    def __set__(self, wrapper: Any, value: Any) -> None:
        # Django resets it to None on close; the scope owns the connection.
        if value is not None:
            raise SyncConnectionError(
                f"vinyl alias {wrapper.alias!r} takes its connection from the "
                f"engine scope; it cannot be assigned"
            )


class VinylCursor:
    """A DB-API cursor over the SQLAlchemy driver adapter's cursor.

    Subclasses rewrite SQL and parameters for their driver in
    :meth:`prepare`; everything else is the adapter's.
    """

    __slots__ = ("cursor", "alias")

    def __init__(self, cursor: Any, alias: str = "") -> None:
        self.cursor = cursor
        self.alias = alias

    @staticmethod
    def prepare(sql: str, params: Any) -> tuple[str, Any]:
        """Return the SQL and parameters to hand to the driver."""
        return sql, params

    @staticmethod
    def shared_parameters(sql: str, params: Sequence[Any]) -> tuple[int, ...] | None:
        """Where :meth:`prepare` sends one parameter for several equal ones:
        for each parameter, the index of the one it is sent as (its own when
        it is sent itself); None when each is sent as it is."""
        return None

    @classmethod
    def plan_preparer(cls, sql: str) -> Callable[[str, Any], tuple[str, Any]]:
        """:meth:`prepare` for the statement ``sql`` of a plan, run at each
        of its calls; a backend may keep what it derives from ``sql``."""
        return cls.prepare

    def execute(self, sql: str, params: Any = None) -> Any:
        return self.run_prepared(*self.prepare(sql, params))

    def run_prepared(self, sql: str, params: Any) -> Any:
        """Execute SQL and parameters already in the driver's form."""
        if not _querylog.observing():
            return self.cursor.execute(sql, params)
        started = time.perf_counter()
        try:
            return self.cursor.execute(sql, params)
        finally:
            _querylog.record(self.alias, sql, params, started)

    def executemany(self, sql: str, param_list: Iterable[Any]) -> Any:
        param_list = list(param_list)
        if not param_list:
            return None
        sql_out, _ = self.prepare(sql, param_list[0])
        prepared = [self.prepare(sql, params)[1] for params in param_list]
        if not _querylog.observing():
            return self.cursor.executemany(sql_out, prepared)
        started = time.perf_counter()
        try:
            return self.cursor.executemany(sql_out, prepared)
        finally:
            _querylog.record(self.alias, sql_out, prepared, started, many=True)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        if size is None:
            return self.cursor.fetchmany()
        return self.cursor.fetchmany(size)

    def fetchall(self) -> Any:
        return self.cursor.fetchall()

    def close(self) -> None:
        self.cursor.close()

    def __iter__(self) -> Any:
        return iter(self.fetchone, None)

    def __enter__(self) -> VinylCursor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


class VinylErrorWrapper(DatabaseErrorWrapper):
    """Django's error wrapper with vinyl's one mapping of driver errors
    (:func:`vinyl.exceptions.django_error`, through the backend's
    ``vinyl_map_error``): SQLSTATEs as psycopg maps them, MySQL codes as
    Django's MySQL backend does, lost connections as OperationalError."""

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            error = self.wrapper.vinyl_map_error(exc_value)
            if error is not exc_value:
                if not isinstance(error, (DataError, IntegrityError, UnicodeEncodeError)):
                    self.wrapper.errors_occurred = True
                raise error.with_traceback(traceback) from exc_value
        super().__exit__(exc_type, exc_value, traceback)


class VinylWrapperMixin:
    """Mixed in before a Django ``DatabaseWrapper`` to make it a vinyl one."""

    alias: str
    settings_dict: dict[str, Any]
    # Django's wrapper gives these (vendor, features); the transaction flags
    # are _ScopedAttribute descriptors, installed below.
    vendor: str
    features: Any
    autocommit: bool
    atomic_blocks: list

    #: SQLAlchemy drivername of the async dialect, e.g. ``"postgresql+asyncpg"``.
    sqlalchemy_drivername: str = ""
    #: Cursor class that adapts SQL and parameters for the driver.
    vinyl_cursor_class: type[VinylCursor] = VinylCursor

    connection = _BoundConnection()
    needs_rollback = _LevelNeedsRollback()

    @property
    def wrap_database_errors(self) -> VinylErrorWrapper:
        return VinylErrorWrapper(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Test databases: a vinyl alias mirrors its sync alias's (testdb.py).
        cls.creation_class = creation_class(cls.creation_class)  # type: ignore[attr-defined]
        # Django's sync entry points refuse to run inside an event loop. Here
        # they run inside SQLAlchemy's greenlet bridge, where every driver call
        # is awaited: the guard does not apply, so call what it wraps.
        for name in dir(cls):
            attr = getattr(cls, name, None)
            unwrapped = _compat.unwrap_async_unsafe(attr)
            if unwrapped is not None:
                setattr(cls, name, unwrapped)

    # -- per-scope state -------------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django's __init__ resets the transaction flags. A wrapper may be
        # built inside the bridge (the first connections[alias] of a task):
        # those resets must not reach the bound scope's live state.
        self.__dict__["_vinyl_initializing"] = True
        try:
            super().__init__(*args, **kwargs)
        finally:
            del self.__dict__["_vinyl_initializing"]
        follow_twin(self)

    def _vinyl_state(self) -> SimpleNamespace:
        scope = bound_scope(self.alias)
        if scope is None or self.__dict__.get("_vinyl_initializing"):
            state = self.__dict__.get("_vinyl_unbound_state")
            if state is None:
                state = self.__dict__["_vinyl_unbound_state"] = _new_state()
            return state
        state = scope.connection_state.get("django")
        if state is None:
            state = scope.connection_state["django"] = _new_state()
            if scope.transactional:
                # The transaction belongs to vinyl's scope: to Django's code it
                # is always an atomic block it cannot commit, so each Django
                # atomic() inside it is a savepoint and mark_for_rollback_on_error
                # flags the level, as in a Django atomic block.
                state.in_atomic_block = True
            else:
                # No transaction: the connection autocommits, as Django's own
                # do, and Django may begin one (atomic() in a model's save()).
                state.autocommit = True
        return state

    # -- engine configuration -------------------------------------------

    def vinyl_engine_config(self) -> EngineConfig:
        """Describe the SQLAlchemy engine of this alias from its settings."""
        settings = self.settings_dict
        options = dict(settings.get("OPTIONS") or {})
        engine_kwargs: dict[str, Any] = {**self.vinyl_pool_defaults(), **self.vinyl_engine_defaults()}
        pool = options.pop("pool", None) or {}
        if not isinstance(pool, dict):
            raise SyncConnectionError(
                f"DATABASES[{self.alias!r}]['OPTIONS']['pool'] must be a dict of "
                f"create_async_engine() pool arguments, got {pool!r}"
            )
        engine_kwargs.update(pool)
        connect_args = {**self.vinyl_connect_args(), **options}
        if connect_args:
            engine_kwargs["connect_args"] = connect_args
        return EngineConfig(
            url=self.vinyl_url(),
            engine_kwargs=engine_kwargs,
            load_facts=self.vinyl_load_facts,
            autocommit_options=self.vinyl_autocommit_options,
            in_transaction=self.vinyl_in_transaction,
            idle=self.vinyl_idle,
            fetch=self.vinyl_fetch,
            execute=self.vinyl_execute,
            insert_id=self.vinyl_insert_id,
            map_error=self.vinyl_map_error,
            start_transaction=self.vinyl_start_transaction,
            stream=self.vinyl_stream,
            stream_transaction=self.vinyl_stream_transaction,
            server_may_end_transaction=self.vinyl_server_may_end_transaction,
        )

    @staticmethod
    async def vinyl_fetch(driver_connection: Any, sql: str, params: tuple, /) -> list:
        """Run a read on the driver connection and return its rows."""
        raise NotImplementedError

    @staticmethod
    async def vinyl_execute(driver_connection: Any, sql: str, params: tuple, /) -> int:
        """Run a write on the driver connection and return its row count."""
        raise NotImplementedError

    #: ``async (conn, sql, params) -> [(new key,)]`` for an INSERT of one row
    #: whose only returned column is an auto-increment key the driver reports
    #: without a RETURNING result (MySQL's insert id); None elsewhere.
    vinyl_insert_id: Any = None

    @staticmethod
    async def vinyl_stream(driver_connection: Any, sql: str, params: tuple, shared: bool) -> DriverCursor:
        """Run a read on the driver connection and return its open cursor.

        The rows stay on the server (or in the socket) until fetched. With
        ``shared``, other statements may run on the connection between two
        fetches (inside a block shared by tasks).
        """
        raise NotImplementedError

    #: Does a streamed read need a transaction outside a block?
    vinyl_stream_transaction: bool = False

    #: Does the server end a transaction on some errors, then autocommit the
    #: next statements (MySQL)? See EngineConfig.server_may_end_transaction.
    vinyl_server_may_end_transaction: bool = False

    #: ``(adapter connection) -> awaitable | None``: start a transaction
    #: that the driver adapter begins lazily, before statements run on the
    #: driver (None when it has begun, or is not to begin).
    vinyl_start_transaction: Any = None

    def vinyl_map_error(self, exc: BaseException) -> BaseException:
        """Return the Django exception for a driver error."""
        return django_error(exc)

    #: Execution options that switch a connection to autocommit with no round
    #: trip; ``{}`` if pooled connections autocommit until a transaction
    #: begins; None if switching costs one.
    vinyl_autocommit_options: dict[str, Any] | None = None

    @staticmethod
    def vinyl_in_transaction(driver_connection: Any) -> bool:
        """Does ``driver_connection`` have a transaction open?"""
        return True

    @classmethod
    def vinyl_idle(cls, driver_connection: Any) -> bool:
        """Can ``driver_connection`` go back to the pool without any I/O?"""
        return not cls.vinyl_in_transaction(driver_connection)

    def vinyl_url(self) -> URL:
        s = self.settings_dict
        port = s.get("PORT")
        return URL.create(
            self.sqlalchemy_drivername,
            username=s.get("USER") or None,
            password=s.get("PASSWORD") or None,
            host=s.get("HOST") or None,
            port=int(port) if port else None,
            database=s.get("NAME") or None,
        )

    def vinyl_engine_defaults(self) -> dict[str, Any]:
        return {}

    def vinyl_pool_defaults(self) -> dict[str, Any]:
        # No pool_pre_ping by default: it costs a round trip per operation.
        # A connection the server closed fails its statement, is discarded,
        # and the next statement gets a live one.
        return {}

    def vinyl_connect_args(self) -> dict[str, Any]:
        return {}

    async def vinyl_load_facts(self, conn: Any) -> dict[str, Any]:
        return {}

    def vinyl_facts(self) -> dict[str, Any]:
        scope = bound_scope(self.alias)
        facts = scope.facts if scope is not None else cached_facts(self.alias)
        if facts is None and scope is None:
            facts = self._facts_from_twin()
        if facts is None:
            raise SyncConnectionError(
                f"vinyl alias {self.alias!r} has not connected yet, so its server "
                f"version is unknown: run a query with await first (or add a sync "
                f"alias with the same NAME, HOST and PORT, which sync code such as "
                f"`manage.py check` can ask)"
            )
        return facts

    def _facts_from_twin(self) -> dict[str, Any] | None:
        """The server facts, read by the sync alias of the same database.

        Sync code (system checks, the test runner) asks features before vinyl
        may have connected; the sync alias of the same server knows them.
        """
        if _compat.running_loop() is not None:
            return None  # a sync connection may not run in an event loop
        twin = self.settings_dict.get("TEST", {}).get("MIRROR") or find_twin(self.alias, self.vendor)
        if twin is None:
            return None
        from django.db import connections

        return self.vinyl_facts_of(connections[twin])

    @staticmethod
    def vinyl_facts_of(sync_wrapper: Any) -> dict[str, Any] | None:
        """Read this backend's server facts through a sync Django connection."""
        return None

    def vinyl_test_database_ready(self) -> None:
        """Prepare the test database this alias now mirrors (sync, no loop)."""

    # -- connection management: the scope does it ------------------------

    def _no_sync_connection(self) -> SyncConnectionError:
        twin = self.settings_dict.get("TEST", {}).get("MIRROR") or find_twin(self.alias, self.vendor)
        sync = repr(twin) if twin else "a sync alias with the same NAME, HOST and PORT"
        return SyncConnectionError(
            f"database alias {self.alias!r} uses a vinyl backend, which has no "
            f"synchronous connection: query it with `await Model.vinyl...` (or "
            f"`Model.vinyl.using({self.alias!r})`), not through the sync ORM; "
            f"migrations and management commands run on the sync alias of the "
            f"same database, {sync} (`manage.py migrate --database "
            f"{twin or '<sync alias>'}`)"
        )

    def ensure_connection(self) -> None:
        if bound_scope(self.alias) is None:
            raise self._no_sync_connection()

    def connect(self) -> None:
        raise self._no_sync_connection()

    def get_new_connection(self, conn_params: Any) -> Any:
        raise self._no_sync_connection()

    def init_connection_state(self) -> None:
        pass

    def close(self) -> None:
        # The engine scope owns the connection; Django's request signals
        # (close_old_connections) must not touch it.
        pass

    def close_if_unusable_or_obsolete(self) -> None:
        pass

    def close_if_health_check_failed(self) -> None:
        pass

    def is_usable(self) -> bool:
        return True

    def validate_thread_sharing(self) -> None:
        # Scopes, not threads, keep connections apart.
        pass

    def create_cursor(self, name: str | None = None) -> Any:
        scope: Scope | None = bound_scope(self.alias)
        if scope is None:
            raise self._no_sync_connection()
        return self.vinyl_cursor_class(scope.dbapi_connection().cursor(server_side=bool(name)), self.alias)

    def chunked_cursor(self) -> Any:
        scope = bound_scope(self.alias)
        if scope is not None and not scope.exclusive and not self.features.can_interleave_with_server_side_cursor:
            # Other tasks' statements may run on this connection between two
            # chunks, which would cut an open unbuffered result short: the
            # driver buffers the result instead.
            return _compat.wrapper_cursor(self)
        return _compat.wrapper_cursor(self, "vinyl_chunked")

    def get_autocommit(self) -> bool:
        # Django asks in two places here: atomic(), which never gets this far
        # (in_atomic_block is always set), and select_for_update(), which
        # needs a transaction the application holds: a vinyl block, or a
        # Django atomic() inside the operation (update_or_create).
        scope = bound_scope(self.alias)
        if scope is None:
            return False
        if not scope.transactional:
            return self.autocommit
        return not scope.in_block and not self.atomic_blocks

    # Outside a vinyl transaction the scope's connection autocommits, and
    # Django may begin and end a transaction on it as on its own connections.
    # Inside one, the transaction belongs to vinyl.atomic / SQLAlchemy.

    def _owned_transaction(self) -> bool:
        scope = bound_scope(self.alias)
        return scope is None or scope.transactional

    def _savepoint_allowed(self) -> bool:
        if bound_scope(self.alias) is None:
            # No connection, so nothing to save: Django's TestCase opens an
            # atomic block on every alias of a test, vinyl's mirrors included,
            # in sync code where no vinyl statement runs.
            return False
        if self._owned_transaction():
            # Every vinyl transaction scope is a transaction.
            return self.features.uses_savepoints
        return self.features.uses_savepoints and not self.autocommit

    def _set_autocommit(self, autocommit: bool) -> None:
        if self._owned_transaction():
            raise TransactionManagementError(
                f"vinyl alias {self.alias!r}: transactions are managed by "
                f"`async with vinyl.atomic()`, not by set_autocommit()"
            )
        super()._set_autocommit(autocommit)  # type: ignore[misc]

    def _commit(self) -> None:
        if self._owned_transaction():
            raise TransactionManagementError(
                f"vinyl alias {self.alias!r}: commit by leaving `async with vinyl.atomic()`"
            )
        super()._commit()  # type: ignore[misc]

    def _rollback(self) -> None:
        if self._owned_transaction():
            raise TransactionManagementError(
                f"vinyl alias {self.alias!r}: roll back by raising out of "
                f"`async with vinyl.atomic()`"
            )
        super()._rollback()  # type: ignore[misc]

    def check_constraints(self, table_names: Any = None) -> None:
        # Django's TestCase checks deferred constraints on every alias of a
        # test at its end, in sync code: unbound, no vinyl statement ran there.
        if bound_scope(self.alias) is None:
            return
        super().check_constraints(table_names)  # type: ignore[misc]

    def get_database_version(self) -> tuple[int, ...]:
        return tuple(self.vinyl_facts().get("version", ()))

    def check_database_version_supported(self) -> None:
        pass


for _name in _SCOPED_DEFAULTS:
    _attr = _ScopedAttribute()
    _attr.__set_name__(VinylWrapperMixin, _name)
    setattr(VinylWrapperMixin, _name, _attr)
del _name, _attr
