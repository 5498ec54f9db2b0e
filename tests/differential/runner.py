"""Run generated cases on Django's sync ORM (a worker thread) and on vinyl; compare.

Reads run on the same rows for both ORMs, interleaved by shape on a warm plan
cache, a quarter of the batches concurrently under ``asyncio.gather``.
Writes run with Django, the tables are read whole, the rows restored, the
same write runs with vinyl, the tables are read again: answers, exceptions
and table contents must agree. Some writes are transactions: steps (writes,
and reads that see them) in one atomic block, each step's error left to
roll the block back, caught after a savepoint, or caught with none (see
``_django_txn``). A mismatch is reduced to a reproduction:
the case alone on a cold plan cache (with chain methods removed while it
still fails), else the draw of the same shape that created the plan first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import Case as SqlCase
from django.db.models import Value, When
from django.utils import timezone

import vinyl
import vinyl.queryset as vinyl_queryset
from tests.differential import known
from tests.differential.compare import classify, diff_summary, non_vinyl_instances, norm, norm_instance, norm_result
from tests.differential.data import Dataset, restore, snapshot
from tests.differential.grammar import Grammar, loaded_by
from tests.differential.nodes import DJANGO, MODELS, PRELUDE, VINYL, Case, apply_ops, async_name, build, code, stream_of

VINYL_ALIAS = "vinyl_default"
#: Chain methods a reproduction may drop (the others decide how answers compare).
REMOVABLE = {"filter", "exclude", "annotate", "alias", "select_related", "prefetch_related", "only", "defer", "distinct"}


def _tz(case: Case) -> Any:
    return timezone.override(case.tz) if case.tz else contextlib.nullcontext()


def _error(stage: str, exc: BaseException, oracle: bool = False) -> tuple:
    return ("error", stage, classify(exc, oracle), f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:300]}")


# ---------------------------------------------------------------- Django side
def _django_terminal(qs: Any, case: Case, alias: str) -> Any:
    name, args, kwargs = case.terminal
    if name == "list":
        return list(qs)
    if name == "iter":
        size, how = stream_of(case)
        if how == "aiter":
            return list(qs)  # (Django's own ``async for`` over a QuerySet fetches it whole)
        if size is None and how == "aiterator":
            size = 2000  # (Django's aiterator(): its default, prefetching included)
        return list(qs.iterator() if size is None else qs.iterator(chunk_size=size))
    if name == "index":
        return qs[args[0]]
    return getattr(qs, name)(*build(args, DJANGO, alias), **dict(build(kwargs, DJANGO, alias)))


def refresh_targets(value: Any) -> list:
    """The instances a case refreshes after its terminal: up to 3, lowest primary key first."""
    objs = value if isinstance(value, list) else [value]
    return sorted((o for o in objs if isinstance(o, models.Model)), key=lambda o: o.pk)[:3]


def _refresh_fields(obj: Any, spec: Any) -> Any:
    """The ``fields=`` of the refresh: ``deferred`` (those of ``obj``), ``all`` (None) or the names given."""
    if spec == "deferred":
        return sorted(obj.get_deferred_fields())
    return None if spec == "all" else list(spec)


def _django_related_reads(value: Any, case: Case) -> tuple:
    """A related manager's read on the instances of the answer (Django's ``all()``/``count()`` read its prefetch)."""
    head, method = case.extra["rel_after"]
    out = []
    for obj in refresh_targets(value):
        manager = getattr(obj, head)
        if method == "all":
            out.append(norm_result(list(manager.all()), (), (), False))
        elif method == "filter":
            out.append(norm_result(list(manager.filter(pk__gt=0)), (), (), False))
        else:
            out.append(norm(getattr(manager, method)()))
    return tuple(out)


def _django_refreshed(value: Any, case: Case) -> tuple:
    """``refresh_from_db(fields=...)`` on the instances of the answer (reading a deferred field does that), then
    the instances again."""
    out = []
    for obj in refresh_targets(value):
        obj.refresh_from_db(fields=_refresh_fields(obj, case.extra["refresh"]))
        out.append(norm_instance(obj, (), ()))
    return tuple(out)


def _django_object_op(case: Case, alias: str) -> Any:
    name, args, _ = case.terminal
    model = MODELS[case.model]
    obj = model.objects.using(alias).get(pk=args[0])
    if name == "obj:save":
        _, values, update_fields = args
        for attr, value in values:
            setattr(obj, attr, build(value, DJANGO, alias))
        obj.save(update_fields=update_fields)
        return None
    if name == "obj:delete":
        return obj.delete()
    _, attr, method, targets = args
    manager = getattr(obj, attr)
    targets = build(list(targets), DJANGO, alias)
    if method == "set":
        return manager.set(targets)
    if method == "clear":
        return manager.clear()
    return getattr(manager, method)(*targets)


def django_run(case: Case, alias: str) -> tuple:
    """The outcome of ``case`` on Django's sync ORM (call in the worker thread)."""
    if case.terminal[0] == "txn":
        return _django_txn(case, alias)
    with _tz(case):
        if case.terminal[0].startswith("obj:"):
            try:
                return ("ok", norm(_django_object_op(case, alias)))
            except Exception as exc:  # noqa: BLE001 - the exception is the answer compared
                return _error("run", exc, oracle=True)
        try:
            qs = apply_ops(MODELS[case.model].objects.using(alias), case.ops, DJANGO, alias)
        except Exception as exc:  # noqa: BLE001
            return _error("build", exc, oracle=True)
        try:
            value = _django_terminal(qs, case, alias)
            result = norm_result(value, case.related, case.attrs, case.ordered, case.in_order)
        except Exception as exc:  # noqa: BLE001
            return _error("run", exc, oracle=True)
        if case.extra.get("rel_after") is not None:
            try:
                result = ("related reads", result, _django_related_reads(value, case))
            except Exception as exc:  # noqa: BLE001
                return _error("related", exc, oracle=True)
        if case.extra.get("refresh") is None:
            return ("ok", result)
        try:
            return ("ok", ("refreshed", result, _django_refreshed(value, case)))
        except Exception as exc:  # noqa: BLE001
            return _error("refresh", exc, oracle=True)


def _django_run_in_order(case: Case, alias: str, pks: list) -> tuple:
    """``case`` on Django with its rows in the order of ``pks``, each key once (see Runner.agrees_in_vinyls_order)."""
    order = SqlCase(*(When(pk=pk, then=Value(i)) for i, pk in enumerate(pks)), output_field=models.IntegerField())
    with _tz(case):
        try:
            qs = apply_ops(MODELS[case.model].objects.using(alias), case.ops, DJANGO, alias).order_by(order)
            return ("ok", norm_result(_django_terminal(qs, case, alias), case.related, case.attrs, True, case.in_order))
        except Exception as exc:  # noqa: BLE001
            return _error("run", exc, oracle=True)


def _two_refusals(d: tuple, v: tuple) -> bool:
    """Both sides refused the statement when it ran, with errors of other classes."""
    return d[:2] == v[:2] == ("error", "run") and d[2] != v[2]


def _order_may_decide(case: Case, d: tuple, v: tuple) -> bool:
    """Both answered, an unordered stream with prefetches: could the row order explain the difference?"""
    return (d[0] == v[0] == "ok" and not case.ordered and case.terminal[0] == "iter"
            and any(name == "prefetch_related" for name, _args, _kwargs in case.ops))


# ----------------------------------------------------------------- vinyl side
async def _vinyl_terminal(qs: Any, case: Case) -> Any:
    name, args, kwargs = case.terminal
    if name == "list":
        return await qs
    if name == "iter":
        size, how = stream_of(case)
        if how == "aiter":
            return [x async for x in qs]
        stream = getattr(qs, how)
        return [x async for x in (stream() if size is None else stream(chunk_size=size))]
    if name == "index":
        return await qs[args[0]]
    method = getattr(qs, async_name(case, name))
    return await method(*build(args, VINYL, VINYL_ALIAS), **dict(build(kwargs, VINYL, VINYL_ALIAS)))


async def _vinyl_related_reads(value: Any, case: Case) -> tuple:
    head, method = case.extra["rel_after"]
    out = []
    for obj in refresh_targets(value):
        manager = getattr(obj, head)
        if method == "all":
            out.append(norm_result(await manager.all(), (), (), False))
        elif method == "filter":
            out.append(norm_result(await manager.filter(pk__gt=0), (), (), False))
        else:
            out.append(norm(await getattr(manager, method)()))
    return tuple(out)


async def _vinyl_refreshed(value: Any, case: Case) -> tuple:
    out = []
    for obj in refresh_targets(value):
        await getattr(obj, async_name(case, "refresh_from_db"))(fields=_refresh_fields(obj, case.extra["refresh"]))
        out.append(norm_instance(obj, (), ()))
    return tuple(out)


async def _vinyl_object_op(case: Case) -> Any:
    name, args, _ = case.terminal
    obj = await MODELS[case.model].vinyl.get(pk=args[0])
    if name == "obj:save":
        _, values, update_fields = args
        for attr, value in values:
            setattr(obj, attr, build(value, VINYL, VINYL_ALIAS))
        return await getattr(obj, async_name(case, "save"))(update_fields=update_fields)
    if name == "obj:delete":
        return await getattr(obj, async_name(case, "delete"))()
    _, attr, method, targets = args
    manager = getattr(obj, attr)
    targets = build(list(targets), VINYL, VINYL_ALIAS)
    call = getattr(manager, async_name(case, method))
    if method == "set":
        return await call(targets)
    if method == "clear":
        return await call()
    return await call(*targets)


async def vinyl_run(case: Case) -> tuple:
    """The outcome of ``case`` on vinyl (``M.vinyl`` on the vinyl_default alias)."""
    if case.terminal[0] == "txn":
        return await _vinyl_txn(case)
    with _tz(case):
        if case.terminal[0].startswith("obj:"):
            try:
                return ("ok", norm(await _vinyl_object_op(case)))
            except Exception as exc:  # noqa: BLE001
                return _error("run", exc)
        try:
            qs = apply_ops(MODELS[case.model].vinyl.all(), case.ops, VINYL, VINYL_ALIAS)
        except Exception as exc:  # noqa: BLE001
            return _error("build", exc)
        try:
            value = await _vinyl_terminal(qs, case)
            # bulk_create returns the objects it was given (the user's own class).
            bad = non_vinyl_instances(value) if case.terminal[0] != "bulk_create" else []
            if bad:
                return ("error", "run", "NotVinylInstance", f"instances of {bad} instead of the vinyl class")
            result = norm_result(value, case.related, case.attrs, case.ordered, case.in_order)
        except Exception as exc:  # noqa: BLE001
            return _error("run", exc)
        if case.extra.get("rel_after") is not None:
            try:
                result = ("related reads", result, await _vinyl_related_reads(value, case))
            except Exception as exc:  # noqa: BLE001
                return _error("related", exc)
        if case.extra.get("refresh") is None:
            return ("ok", result)
        try:
            return ("ok", ("refreshed", result, await _vinyl_refreshed(value, case)))
        except Exception as exc:  # noqa: BLE001
            return _error("refresh", exc)


# ------------------------------------------------------ transactions (both sides)
# A "txn" case runs steps (other cases) in one atomic block. Each step is
# guarded: "plain" (its error leaves the block, which rolls back whole),
# "savepoint" (in a nested block of its own, its error caught outside it: only
# that block rolls back) or "caught" (its error caught inside the block, no
# savepoint: Django then lets the block only roll back). The block ends by
# committing, or by an exception raised at its end ("raise": all rolled
# back). The outcome lists each step's answer (errors by class: the texts are
# the drivers') and how the block ended; the tables are compared after.


class _StepFailed(Exception):
    """A step's error, carried out of a block so that the block rolls back."""


class _EndByRollback(Exception):
    """Raised at the end of a block whose case ends by rolling back."""


class _Outcome:
    """A transaction case's answer: each step's outcome (errors by class), then
    how its block ended; as a context manager around the block, it records the
    block's end and keeps its exception (the answer compared)."""

    def __init__(self, oracle: bool) -> None:
        self.oracle = oracle
        self.answers: list = []

    def step(self, guard: str, out: tuple) -> None:
        """Record a step's outcome; a "plain" step's error leaves the block."""
        self.answers.append((guard, out[:3] if out[0] == "error" else out))
        if out[0] == "error" and guard == "plain":
            raise _StepFailed

    def __enter__(self) -> _Outcome:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            self.answers.append("ended")
        elif isinstance(exc, _StepFailed):
            self.answers.append("aborted")
        elif isinstance(exc, _EndByRollback):
            self.answers.append("rolled back")
        elif isinstance(exc, Exception):
            self.answers.append(("exit",) + _error("exit", exc, oracle=self.oracle)[:3])
        else:
            return False
        return True

    def result(self) -> tuple:
        return ("ok", tuple(self.answers))


def _failed(out: tuple) -> None:
    """Leave a step's nested block (its savepoint rolls back) if the step failed."""
    if out[0] == "error":
        raise _StepFailed


def _django_txn(case: Case, alias: str) -> tuple:
    steps, ending = case.terminal[1]
    with _Outcome(oracle=True) as outcome, transaction.atomic(using=alias):
        for sub, guard in steps:
            if guard == "savepoint":
                with contextlib.suppress(_StepFailed), transaction.atomic(using=alias):
                    out = django_run(sub, alias)
                    _failed(out)
            else:
                out = django_run(sub, alias)
            outcome.step(guard, out)
        if ending == "raise":
            raise _EndByRollback
    return outcome.result()


async def _vinyl_txn(case: Case) -> tuple:
    steps, ending = case.terminal[1]
    with _Outcome(oracle=False) as outcome:
        async with vinyl.atomic(using=VINYL_ALIAS):
            for sub, guard in steps:
                if guard == "savepoint":
                    with contextlib.suppress(_StepFailed):
                        async with vinyl.atomic(using=VINYL_ALIAS):
                            out = await vinyl_run(sub)
                            _failed(out)
                else:
                    out = await vinyl_run(sub)
                outcome.step(guard, out)
            if ending == "raise":
                raise _EndByRollback
    return outcome.result()


def _txn_code(case: Case, side: str) -> str:
    steps, ending = case.terminal[1]
    block = "with transaction.atomic():" if side == DJANGO else "async with vinyl.atomic():"

    def indented(text: str, by: str) -> list[str]:
        return [by + line for line in text.splitlines()]

    lines = [block]
    for sub, guard in steps:
        step = case_code(sub, side)
        if guard == "plain":
            lines += indented(step, "    ")
        elif guard == "savepoint":
            lines += ["    try:", "        " + block, *indented(step, "            "), "    except Exception:", "        pass"]
        else:
            lines += ["    try:", *indented(step, "        "), "    except Exception:", "        pass"]
    if ending == "raise":
        lines.append("    raise Rollback  # any exception: the block rolls back")
    return "\n".join(lines)


def agree(d: tuple, v: tuple) -> bool:
    """Same value, or the same exception class raised at the same step."""
    if d[0] == "ok" or v[0] == "ok":
        return d == v
    return d[1:3] == v[1:3]


def case_code(case: Case, side: str) -> str:
    """Python source reproducing ``case`` on ``side``."""
    name, args, _ = case.terminal
    if name == "txn":
        return _txn_code(case, side)
    if not name.startswith("obj:"):
        return case.code(side)
    get = f"{case.model}.objects.get(pk={args[0]!r})" if side == DJANGO else f"await {case.model}.vinyl.get(pk={args[0]!r})"
    aw = "await " if side == VINYL else ""
    lines = [f"obj = {get}"]

    def m(plain: str) -> str:
        return async_name(case, plain) if side == VINYL else plain

    if name == "obj:save":
        for attr, value in args[1]:
            lines.append(f"obj.{attr} = {code(value, side)}")
        lines.append(f"{aw}obj.{m('save')}(update_fields={args[2]!r})")
    elif name == "obj:delete":
        lines.append(f"{aw}obj.{m('delete')}()")
    else:
        _, attr, method, targets = args
        call = {"set": f"{m('set')}({code(list(targets), side)})", "clear": f"{m('clear')}()"}.get(
            method, f"{m(method)}({', '.join(code(t, side) for t in targets)})")
        lines.append(f"{aw}obj.{attr}.{call}")
    return "\n".join(lines)


def _short(outcome: tuple, limit: int = 400) -> str:
    text = repr(outcome)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Mismatch:
    """One disagreement, with what is needed to reproduce it."""

    backend: str
    seed: int
    case: Case
    django: tuple
    vinyl: tuple
    known: str | None = None
    repro: str = ""
    #: Set by the runner (Runner.agrees_in_vinyls_order) for a stream whose
    #: prefetched lists depend on the row order: Django, given vinyl's row
    #: order, answered exactly as vinyl did.
    agrees_in_vinyls_order: bool = False
    #: Set by the runner (Runner.agrees_on_the_same_rows) for a write both
    #: refused with other errors: run again on the very same rows (vinyl
    #: first; its failed statement leaves them as they were), both refused it
    #: with the same error.
    agrees_on_the_same_rows: bool = False
    before: list[Case] = field(default_factory=list)

    def report(self) -> str:
        kind = f"known class {self.known!r}" if self.known else "NEW"
        what = "write" if self.case.write else "read"
        lines = [f"MISMATCH ({kind}) {self.backend} {what} seed={self.seed} shape={self.case.shape} draw={self.case.draw}"]
        if self.repro:
            lines.append(f"  reproduction: {self.repro}")
        for prior in self.before:
            lines.append("  first, on vinyl:")
            lines.extend("    " + ln for ln in case_code(prior, VINYL).splitlines())
        lines.append("  Django:")
        lines.extend("    " + ln for ln in case_code(self.case, DJANGO).splitlines())
        lines.append("  vinyl:")
        lines.extend("    " + ln for ln in case_code(self.case, VINYL).splitlines())
        lines.append(f"  Django -> {_short(self.django)}")
        lines.append(f"  vinyl  -> {_short(self.vinyl)}")
        summary = diff_summary(self.django[1], self.vinyl[1]) if self.django[0] == self.vinyl[0] == "ok" else ""
        if summary:
            lines.append(f"  diff: {summary}")
        return "\n".join(lines)


@dataclass
class Result:
    """Counts of a run and its mismatches."""

    backend: str
    seed: int
    reads: int = 0
    writes: int = 0
    errors_agreed: Counter = field(default_factory=Counter)
    known: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    unknown: list[Mismatch] = field(default_factory=list)
    unknown_count: int = 0
    unknown_by_signature: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    generated: Counter = field(default_factory=Counter)  # the grammar's tally of its rarer shapes

    def summary(self) -> str:
        lines = [f"differential {self.backend}: seed={self.seed} reads={self.reads} writes={self.writes} "
                 f"in {self.seconds:.1f}s; errors agreed {sum(self.errors_agreed.values())} "
                 f"({dict(self.errors_agreed.most_common(8))}); known mismatches {dict(self.known)}; "
                 f"NEW mismatches {self.unknown_count}; rarer shapes drawn {dict(self.generated)}"]
        for signature, n in self.unknown_by_signature.most_common():
            lines.append(f"NEW by (write, terminal, Django, vinyl): {n} x {signature}")
        for name, example in self.examples.items():
            lines.append(f"--- known class {name} (first example):\n{example.report()}")
        for m in self.unknown:
            lines.append(m.report())
        return "\n".join(lines)


class _PoolErrors(logging.Handler):
    """Collects what SQLAlchemy's pool logs at ERROR (a connection it failed to close...)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Runner:
    """One backend, one seed: owns the Django worker thread and the dataset."""

    def __init__(self, backend: str, seed: int, *, log: Any = None, max_reports: int = 12) -> None:
        self.backend = backend
        self.seed = seed
        self.alias = settings.SYNC_ALIAS[backend]
        self.data = Dataset.draw(seed)
        self.grammar = Grammar(self.data, backend)
        self.result = Result(backend, seed, generated=self.grammar.tally)
        self.log = log or (lambda msg: None)
        self.max_reports = max_reports
        self.concurrency = int(os.environ.get("VINYL_FUZZ_CONCURRENCY", "8"))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="django-oracle")
        self.draws_of_shape: dict[tuple[str, int], list[Case]] = {}
        self.history: list[Case] = []  # every read vinyl ran, in order (reproductions replay it)
        self.signatures: Counter = Counter()
        self.pool_errors = _PoolErrors()
        self.pool_logger = logging.getLogger("sqlalchemy.pool")
        self.pool_logger.addHandler(self.pool_errors)

    async def django(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def close(self) -> None:
        self.pool_logger.removeHandler(self.pool_errors)
        await self.django(connections.close_all)
        self.executor.shutdown(wait=True)

    # ------------------------------------------------------------------ reads
    async def run_reads(self, count: int, draws_per_shape: int = 8, batch: int = 8) -> None:
        await self.django(restore, self.alias, self.data)
        shapes = max(1, -(-count // draws_per_shape))  # enough shapes for ``count`` draws; the last round is cut
        order = random.Random(f"{self.seed}-order")
        schedule = []
        for draw in range(draws_per_shape):
            round_ = list(range(shapes))
            order.shuffle(round_)
            schedule.extend((shape, draw) for shape in round_)
        schedule = schedule[:count]
        for start in range(0, len(schedule), batch):
            cases = [self.grammar.read(shape, draw, self.seed) for shape, draw in schedule[start:start + batch]]
            concurrent = (start // batch) % 4 == 3
            django_outcomes = [await self.django(django_run, c, self.alias) for c in cases]
            if concurrent:
                # VINYL_FUZZ_CONCURRENCY at once (default: the whole batch, more than the default pool keeps, so
                # overflow connections are opened and closed on return; judge_pool_log fails on any pool error).
                vinyl_outcomes = []
                for i in range(0, len(cases), self.concurrency):
                    vinyl_outcomes += await asyncio.gather(*(vinyl_run(c) for c in cases[i:i + self.concurrency]))
            else:
                vinyl_outcomes = [await vinyl_run(c) for c in cases]
            for case, d, v in zip(cases, django_outcomes, vinyl_outcomes):
                self.draws_of_shape.setdefault(("r", case.shape), []).append(case)
                self.result.reads += 1
                await self.judge(case, d, v)
                self.history.append(case)
            await self.judge_pool_log(cases)
            if (start // batch) % 50 == 0:
                self.log(f"{self.backend}: {self.result.reads} reads, {self.result.unknown_count} new mismatches, known {dict(self.result.known)}")

    # ----------------------------------------------------------------- writes
    async def write_outcome_django(self, case: Case) -> tuple:
        def run() -> tuple:
            restore(self.alias, self.data)
            outcome = django_run(case, self.alias)
            return outcome, norm(snapshot(self.alias))
        return await self.django(run)

    async def write_outcome_vinyl(self, case: Case) -> tuple:
        await self.django(restore, self.alias, self.data)
        outcome = await vinyl_run(case)
        return outcome, norm(await self.django(snapshot, self.alias))

    async def run_writes(self, count: int, draws_per_shape: int = 3) -> None:
        shapes = max(1, -(-count // draws_per_shape))
        done = 0
        for draw in range(draws_per_shape):
            for shape in range(shapes):
                if done >= count:
                    break
                case = self.grammar.write(shape, draw, self.seed)
                d_out, d_snap = await self.write_outcome_django(case)
                v_out, v_snap = await self.write_outcome_vinyl(case)
                self.result.writes += 1
                done += 1
                if agree(d_out, v_out) and d_snap != v_snap:
                    d_out = d_out + ("tables:", _snap_diff(d_snap, v_snap))
                    v_out = v_out + ("tables differ",)
                if _two_refusals(d_out, v_out):
                    await self.judge_refusals(case, d_out, v_out)
                else:
                    await self.judge(case, d_out, v_out)
                await self.judge_pool_log([case])
                if done % 100 == 0:
                    self.log(f"{self.backend}: {done} writes, {self.result.unknown_count} new mismatches, known {dict(self.result.known)}")
        await self.django(restore, self.alias, self.data)

    # ---------------------------------------------------------------- judging
    async def judge(self, case: Case, d: tuple, v: tuple) -> None:
        if agree(d, v):
            if d[0] == "error":
                self.result.errors_agreed[d[2]] += 1
            return
        await self.judge_mismatch(Mismatch(self.backend, self.seed, case, d, v))

    async def judge_mismatch(self, m: Mismatch) -> None:
        case, d, v = m.case, m.django, m.vinyl
        if _order_may_decide(case, d, v):
            m.agrees_in_vinyls_order = await self.agrees_in_vinyls_order(case, v)
        m.known = known.match(m)
        if m.known:
            self.result.known[m.known] += 1
            self.result.examples.setdefault(m.known, m)
            return
        self.result.unknown_count += 1
        signature = (case.write, case.terminal[0], d[0], d[2] if d[0] == "error" else "", v[0], v[2] if v[0] == "error" else "")
        self.signatures[signature] += 1
        self.result.unknown_by_signature[signature] += 1
        if self.signatures[signature] <= 2 and len(self.result.unknown) < self.max_reports:
            if not case.write and not m.repro:
                await self.reproduce(m)
            self.result.unknown.append(m)
            self.log(m.report())

    async def judge_pool_log(self, cases: list[Case]) -> None:
        """An error SQLAlchemy's pool logged while ``cases`` ran is a mismatch too (Django logs none)."""
        if not self.pool_errors.records:
            return
        records, self.pool_errors.records = self.pool_errors.records, []
        record = records[0]
        cause = record.exc_info[1] if record.exc_info else None
        detail = f"{record.getMessage()}: {type(cause).__module__}.{type(cause).__qualname__}: {cause}" if cause else record.getMessage()
        m = Mismatch(self.backend, self.seed, cases[-1], ("ok", "nothing logged"),
                     ("error", "run", "PoolErrorLogged", f"{len(records)} record(s); {detail[:300]}"), before=cases[:-1])
        m.repro = "logged by sqlalchemy.pool while this batch ran (the cases before it ran in the same batch)"
        await self.judge_mismatch(m)

    async def judge_refusals(self, case: Case, d: tuple, v: tuple) -> None:
        """Judge a write both refused with other errors, after running it again on the same rows."""
        m = Mismatch(self.backend, self.seed, case, d, v)
        m.agrees_on_the_same_rows = await self.agrees_on_the_same_rows(case)
        await self.judge_mismatch(m)

    async def agrees_on_the_same_rows(self, case: Case) -> bool:
        """Restore the rows, run ``case`` on vinyl, then on Django on the rows vinyl left: the same error?

        A statement with two faults (a NOT NULL column set to NULL, and an
        arithmetic overflow on some rows) is refused for the fault of the
        first row the server reaches: the rows' physical order decides, and
        restoring the rows between the two ORMs' runs may place them in
        another order. A refused statement changes no row, so Django then
        meets the rows in the order vinyl met them.
        """
        await self.django(restore, self.alias, self.data)
        v = await vinyl_run(case)
        d = await self.django(django_run, case, self.alias)
        return v[0] == "error" and agree(d, v)

    async def agrees_in_vinyls_order(self, case: Case, answered: tuple) -> bool:
        """Run ``case`` on vinyl again (it must answer ``answered`` again), then on
        Django with vinyl's row order imposed: the same answer, in that order?

        A stream (``iterator(chunk_size=2)``) prefetches chunk by chunk; where
        a row's prefetched list depends on the other rows of its chunk, the
        answer depends on the row order, which an unordered query leaves to
        the server's plan (Django's own ``iterator()`` and ``list()`` can
        disagree). Imposing vinyl's order on Django (``order_by(Case(When(pk=...)))``)
        asks the oracle for its answer in that order.
        """
        with _tz(case):
            try:
                qs = apply_ops(MODELS[case.model].vinyl.all(), case.ops, VINYL, VINYL_ALIAS)
                value = await _vinyl_terminal(qs, case)
            except Exception:  # noqa: BLE001 - an error here is not an answer to compare in an order
                return False
        if not value or not all(isinstance(obj, models.Model) for obj in value):
            return False
        pks = [obj.pk for obj in value]
        # A row may come more than once (a join): the order is imposed by
        # each key's first place, which keeps vinyl's where its repeats are
        # next to each other (else the order cannot be imposed).
        distinct = list(dict.fromkeys(pks))
        if pks != [pk for pk in distinct for _ in range(pks.count(pk))] or not agree(("ok", norm_result(value, case.related, case.attrs, case.ordered, case.in_order)), answered):
            return False
        v = ("ok", norm_result(value, case.related, case.attrs, True, case.in_order))
        d = await self.django(_django_run_in_order, case, self.alias, distinct)
        return agree(d, v)

    async def _mismatch_alone(self, case: Case, before: list[Case]) -> tuple | None:
        """Replay on a cold plan cache; the two outcomes when they still differ."""
        await vinyl.dispose(VINYL_ALIAS)  # the plans go with the engine
        # vinyl also remembers, per process, the chain shapes Django accepted
        # (vinyl.queryset._validated, private: read here only, to replay cold).
        getattr(vinyl_queryset, "_validated", {}).clear()
        for prior in before:
            await vinyl_run(prior)
        d = await self.django(django_run, case, self.alias)
        v = await vinyl_run(case)
        return None if agree(d, v) else (d, v)

    async def reproduce(self, m: Mismatch) -> None:
        """Find the smallest replay that shows the mismatch (see module docstring)."""
        case = m.case
        if await self._mismatch_alone(case, []):
            ops = list(case.ops)
            i = 0
            while i < len(ops):
                kept = tuple(ops[:i] + ops[i + 1:])
                related, attrs = loaded_by(kept)
                trial = Case(**{**case.__dict__, "ops": kept,
                                "related": tuple(r for r in case.related if r in related),
                                "attrs": tuple(a for a in case.attrs if a in attrs)})
                if ops[i][0] in REMOVABLE and await self._mismatch_alone(trial, []):
                    ops.pop(i)
                    case = trial
                else:
                    i += 1
            if case is not m.case:
                again = await self._mismatch_alone(case, [])
                if again:
                    m.case, (m.django, m.vinyl) = case, again
            m.repro = "alone, on a cold plan cache"
            return
        for prior in self.draws_of_shape.get(("r", case.shape), []):
            if prior.draw < case.draw and await self._mismatch_alone(case, [prior]):
                m.before = [prior]
                m.repro = "after another draw of the same shape (a plan made from other values or settings)"
                return
        await self.reduce_history(m)

    async def reduce_history(self, m: Mismatch, budget: int = 60) -> None:
        """Replay the run's earlier reads, then drop chunks of them while the mismatch stays."""
        history = self.history[-3000:]
        if not await self._mismatch_alone(m.case, history):
            m.repro = "not reproduced by replaying the run's reads (concurrency or writes?)"
            return
        replays = 1
        chunk = max(1, len(history) // 2)
        while chunk >= 1 and replays < budget:
            i = 0
            while i < len(history) and replays < budget:
                trial = history[:i] + history[i + chunk:]
                replays += 1
                if await self._mismatch_alone(m.case, trial):
                    history = trial
                else:
                    i += chunk
            chunk //= 2
        m.before = history
        reduced = "minimal" if chunk < 1 else f"reduced within {budget} replays"
        m.repro = f"after these {len(history)} earlier reads on vinyl ({reduced}), on a cold plan cache"


def _snap_diff(a: Any, b: Any) -> str:
    da, db = dict(a[1]) if a[0] == "dict" else {}, dict(b[1]) if b[0] == "dict" else {}
    out = []
    for table in sorted(set(da) | set(db)):
        ra, rb = da.get(table), db.get(table)
        if ra != rb:
            rows_a, rows_b = set(ra[1]), set(rb[1])
            out.append(f"{table}: only Django {sorted(rows_a - rows_b, key=repr)[:2]} only vinyl {sorted(rows_b - rows_a, key=repr)[:2]}")
    return "; ".join(out)


async def run_differential(backend: str, seed: int, reads: int, writes: int, *, log: Any = None) -> Result:
    """Run ``reads`` random reads and ``writes`` random writes on ``backend``."""
    runner = Runner(backend, seed, log=log)
    started = time.monotonic()
    try:
        if reads:
            await runner.run_reads(reads)
        if writes:
            await runner.run_writes(writes)
    finally:
        runner.result.seconds = time.monotonic() - started
        await runner.close()
    return runner.result


__all__ = ["PRELUDE", "Result", "Runner", "run_differential"]
