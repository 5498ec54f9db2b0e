"""The public names of ``import vinyl`` are those of API.md."""

import inspect

import vinyl

API_NAMES = {
    "VinylManager",
    "atomic",
    "capture_queries",
    "dispose",
    "execute",
    "fetch",
    "get_engine",
    "on_commit",
    "use_connection",
}


def test_all_lists_the_public_api_sorted():
    assert API_NAMES <= set(vinyl.__all__)
    assert vinyl.__all__ == sorted(vinyl.__all__)
    for name in vinyl.__all__:
        assert getattr(vinyl, name) is not None


def test_dispose_is_a_coroutine_function():
    assert inspect.iscoroutinefunction(vinyl.dispose)
