"""Test cases for Django's test runner (``manage.py test``).

Under Django's runner, a vinyl alias uses the test database of the sync alias
of the same database (it is that alias's test mirror) with any test case.
:class:`TestCase` adds isolation: each ``async def`` test runs inside one
transaction per vinyl alias, rolled back at its end, as Django's ``TestCase``
does for the sync ORM::

    from vinyl.test import TestCase

    class BookTests(TestCase):
        async def test_create(self):
            await Book.vinyl.create(title="x")     # gone after the test
            self.assertEqual(await Book.vinyl.count(), 1)

Data written by the sync ORM inside Django's test transaction (``setUp``,
``setUpTestData``, fixtures) is not committed, so vinyl's connections do not
see it: create test data with vinyl inside the async test, or use
``TransactionTestCase``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Sequence

from django import test as django_test

from vinyl._testisolation import rolled_back_aliases, vinyl_aliases


class VinylTestMixin:
    """Run each ``async def`` test method in rolled-back vinyl transactions."""

    #: The vinyl aliases to roll back (None: every vinyl alias in DATABASES).
    vinyl_aliases: Sequence[str] | None = None

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)  # type: ignore[call-arg]
        method = getattr(self, methodName, None)
        if method is not None and inspect.iscoroutinefunction(method):
            # An instance attribute: Django's runner then wraps it in
            # async_to_sync as it would the method itself.
            setattr(self, methodName, self._vinyl_isolated(method))

    def _vinyl_isolated(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def isolated(*args: Any, **kwargs: Any) -> Any:
            aliases = vinyl_aliases() if self.vinyl_aliases is None else self.vinyl_aliases
            async with rolled_back_aliases(aliases):
                return await method(*args, **kwargs)

        return isolated


class TestCase(VinylTestMixin, django_test.TestCase):
    """Django's ``TestCase``; async tests' vinyl queries are rolled back too."""


__all__ = ["TestCase", "VinylTestMixin"]
