"""What the SQL compilers of every vinyl backend share."""

from __future__ import annotations

import json
from typing import Any, Iterator


class ParentFieldsMixin:
    """``select_related`` of a child model (multi-table inheritance) from a vinyl query.

    ``Owner.vinyl.select_related("premium")`` must give ``Premium`` instances
    with their parent's fields, as Django does. Django recognizes a child of
    the query's model with ``issubclass(child, query model)``; the query's
    model is vinyl's proxy class of ``Owner``, which ``Premium`` does not
    subclass, so the parent's columns were left out. The check is repeated
    here against the proxy's concrete model.
    """

    query: Any

    def get_related_selections(self, select: Any, select_mask: Any, *args: Any, **kwargs: Any) -> list:
        infos = super().get_related_selections(select, select_mask, *args, **kwargs)  # type: ignore[misc]
        if args or kwargs.get("opts") is not None:
            return infos  # a nested level: its model is the user's own class
        root = self.query.get_meta()
        if not root.proxy:
            return infos
        concrete = root.concrete_model
        for info in infos:
            model = info["model"]
            if info.get("reverse") and not info["from_parent"] and model is not concrete and issubclass(model, concrete):
                info["from_parent"] = True
        return infos


class ExplainMixin:
    """``explain(format="json")`` returns the plan's JSON document itself.

    psycopg decodes PostgreSQL's ``json`` column and Django encodes it back;
    asyncpg and asyncmy hand over the text, which Django would encode a
    second time (a JSON string holding JSON).
    """

    query: Any

    def explain_query(self) -> Iterator[str]:
        explain_format = self.query.explain_info.format
        if not explain_format or explain_format.lower() != "json":
            yield from super().explain_query()  # type: ignore[misc]
            return
        for rows in self.execute_sql():  # type: ignore[attr-defined]
            for row in rows:
                yield " ".join(v if isinstance(v, str) else json.dumps(v) for v in row)
