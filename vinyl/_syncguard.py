"""Say what to do when async code calls the sync ORM on the user's model.

``await Author(name="x").save()`` in async code runs Django's sync ``save()``
on the ``default`` alias, which refuses with Django's "use a thread or
sync_to_async". On a model with a vinyl manager, the error says instead how
vinyl does it: ``await Author.vinyl.create(...)``, or ``await obj.save()`` on
an instance that vinyl returned.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from django.core.exceptions import SynchronousOnlyOperation

_HINTS = {
    "save": "insert with `await {model}.{manager}.create(...)`; update an instance that "
    "vinyl returned (`obj = await {model}.{manager}.get(pk=...)`) with `await obj.save()`",
    "delete": "delete with `await {model}.{manager}.filter(pk=obj.pk).delete()`, or "
    "`await obj.delete()` on an instance that vinyl returned",
    "refresh_from_db": "reload with `obj = await {model}.{manager}.get(pk=obj.pk)`, or "
    "`await obj.refresh_from_db()` on an instance that vinyl returned",
}


def guard_model(model: type, manager: str) -> None:
    """Wrap ``model``'s save/delete/refresh_from_db to explain the async way."""
    for name, hint in _HINTS.items():
        original = getattr(model, name)
        if getattr(original, "_vinyl_guard", False):
            continue
        setattr(model, name, _guarded(original, name, hint))
    # The first vinyl manager names the way in the messages.
    if "_vinyl_manager_name" not in model.__dict__:
        model._vinyl_manager_name = manager  # type: ignore[attr-defined]


def unguarded(method: Any) -> Any:
    """The method a guard wraps (itself if it is none): what the model defines."""
    return method.__wrapped__ if getattr(method, "_vinyl_guard", False) else method


def _guarded(original: Callable[..., Any], name: str, hint: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except SynchronousOnlyOperation as exc:
            model = getattr(type(self), "_vinyl_origin", type(self))
            manager = getattr(model, "_vinyl_manager_name", "vinyl")
            raise SynchronousOnlyOperation(
                f"{model.__name__}.{name}() is Django's sync ORM, which cannot run in "
                f"async code: {hint.format(model=model.__name__, manager=manager)}"
            ) from exc

    method._vinyl_guard = True  # type: ignore[attr-defined]
    return method


__all__ = ["guard_model", "unguarded"]
