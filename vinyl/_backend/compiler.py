"""What the SQL compilers of every vinyl backend share."""

from __future__ import annotations

import json
from typing import Any, Iterator


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
