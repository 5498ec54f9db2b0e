"""vinyl's ``save_base`` takes Django's steps, in Django's order.

``VinylInstance.save_base`` cannot call Django's: Django sends ``pre_save`` /
``post_save`` with ``Signal.send``, which cannot run async receivers inside
vinyl's bridge (asgiref refuses ``async_to_sync`` in the event loop's
thread), and with the vinyl class as sender, which receivers connected to
the user's model never hear. So it sends them itself (``Signal.asend``,
the user's model as sender) and calls Django's own steps in between. If a
Django release changes those steps, this test names the change.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

from django.db.models import Model

from vinyl.models import VinylInstance


def _calls(function: object) -> list[str]:
    """The calls in ``function``'s source, in source order."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    return [ast.unparse(node.func) for node in calls]


#: Django's save_base (5.2 to 6.1): its calls, in order.
DJANGO_STEPS = [
    "router.db_for_write",
    "pre_save.send",
    "transaction.atomic",
    "transaction.mark_for_rollback_on_error",
    "self._validate_force_insert",
    "self._save_parents",
    "self._save_table",
    "post_save.send",
]


def test_djangos_save_base_has_the_steps_vinyl_mirrors():
    assert _calls(Model.save_base) == DJANGO_STEPS, (
        "Django's Model.save_base changed: vinyl.models.VinylInstance.save_base takes its "
        "steps itself (see this module's docstring); bring it in line, then update DJANGO_STEPS"
    )


def test_vinyls_save_base_takes_the_same_steps_with_awaited_signals():
    # The alias comes from the instance or vinyl's default (Django's save() routed it already).
    # Django's private steps are called through vinyl._compat (checked at import).
    awaited = {
        "pre_save.send": "pre_save.asend",
        "post_save.send": "post_save.asend",
        "self._validate_force_insert": "_compat.validate_force_insert",
        "self._save_parents": "_compat.save_parents",
        "self._save_table": "_compat.save_table",
    }
    expected = [awaited.get(step, step) for step in DJANGO_STEPS if step != "router.db_for_write"]
    steps = [step for step in _calls(VinylInstance.save_base) if step != "_bridge.await_"]
    assert steps == expected
