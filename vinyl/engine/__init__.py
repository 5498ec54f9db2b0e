"""SQLAlchemy engines, pools, and the connection and transaction of a task."""

from vinyl.engine.engines import DEFAULT_ALIAS, EngineConfig, dispose, get_engine, set_engine

__all__ = ["DEFAULT_ALIAS", "EngineConfig", "dispose", "get_engine", "set_engine"]
