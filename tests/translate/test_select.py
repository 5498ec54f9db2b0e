"""Exact SQL and parameters of compiled QuerySets, without a database."""

from __future__ import annotations

from tests.testapp.models import Author, Book
from vinyl.translate.select import compile_select


def test_postgresql_filter_order_limit():
    sql, params = compile_select(
        Author.vinyl.using("vinyl_postgresql").filter(name="x", age__gt=3).order_by("-id")[:10]
    )
    assert sql == (
        'SELECT "testapp_author"."id", "testapp_author"."name", "testapp_author"."age", '
        '"testapp_author"."email" FROM "testapp_author" WHERE ("testapp_author"."age" > $1::int4 '
        'AND "testapp_author"."name" = $2) ORDER BY "testapp_author"."id" DESC LIMIT 10'
    )
    assert params == (3, "x")


def test_mysql_keeps_format_placeholders():
    sql, params = compile_select(
        Author.vinyl.using("vinyl_mysql").filter(name="x", age__gt=3).order_by("-id")[:10]
    )
    assert sql == (
        "SELECT `testapp_author`.`id`, `testapp_author`.`name`, `testapp_author`.`age`, "
        "`testapp_author`.`email` FROM `testapp_author` WHERE (`testapp_author`.`age` > %s "
        "AND `testapp_author`.`name` = %s) ORDER BY `testapp_author`.`id` DESC LIMIT 10"
    )
    assert params == (3, "x")


def test_postgresql_like_values_stay_in_params_and_percent_is_unescaped():
    sql, params = compile_select(
        Book.vinyl.using("vinyl_postgresql").select_related("author").filter(title__contains="50%")
    )
    assert 'INNER JOIN "testapp_author"' in sql
    assert sql.endswith('WHERE "testapp_book"."title"::text LIKE $1 ORDER BY "testapp_book"."id" ASC')
    assert params == ("%50\\%%",)


def test_same_shape_different_values_gives_same_sql():
    one = compile_select(Author.vinyl.using("vinyl_postgresql").filter(name="a"))
    two = compile_select(Author.vinyl.using("vinyl_postgresql").filter(name="b"))
    assert one[0] == two[0]
    assert (one[1], two[1]) == (("a",), ("b",))
