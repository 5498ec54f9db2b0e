"""A quicker ``Model.__init__`` for models with a vinyl manager.

Building instances is part of every write (``create(**kwargs)``,
``bulk_create([Model(...), ...])``) and of every read (``from_db``). Django's
``Model.__init__`` handles every way of calling it (related objects by
field name, properties, positional and keyword values mixed, ``pre_init`` and
``post_init`` receivers); most calls are one of two plain shapes:

- keywords only, each the ``attname`` of a concrete field (``Book(title="x",
  author_id=1)``);
- one positional value per concrete field (``from_db``).

For those, when ``pre_init`` would call no receiver for the class, the
instance gets what Django's ``__init__`` gives it (a new ``_state``, the same
attributes in the same order, field defaults called the same way, then
``post_init``), without the per-field dispatch. Any other call, or a
class whose ``__init__`` chain or field descriptors this module does not
know, runs Django's own ``__init__``.
"""

from __future__ import annotations

import keyword
from typing import Any, Callable

from django.db.models import Field, Model
from django.db.models.base import DEFERRED, ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.dispatch.dispatcher import NO_RECEIVERS

_django_init = Model.__init__

# Class attributes at a field's attname whose __set__ on a new instance only
# stores the value in the instance's __dict__ (ForeignKeyDeferredAttribute
# also drops a cached related object, which a new instance has none of).
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


class _Spec:
    """What the quick path of one class needs, computed on its first instance."""

    __slots__ = ("names", "by_keyword", "attnames", "direct")

    def __init__(self, names: frozenset, by_keyword: tuple, attnames: tuple, direct: bool) -> None:
        # Keyword names the quick path accepts (attnames of concrete fields).
        self.names = names
        # (attname, constant default, default factory or None when the
        # default is that constant) per field Django's keyword path fills, in
        # its order.
        self.by_keyword = by_keyword
        # Attnames of the concrete fields, in positional order.
        self.attnames = attnames
        # Can every value be stored in __dict__ (no descriptor with side effects)?
        self.direct = direct


# class -> its _Spec, or None where the quick path does not apply.
_specs: dict[type, _Spec | None] = {}


def install(model: type[Model]) -> None:
    """Give ``model`` (and its subclasses) the quicker ``__init__``.

    A model (or a base it inherits ``__init__`` from, other than Django's
    ``Model``) that defines its own ``__init__`` keeps it.
    """
    if model.__init__ is _django_init:
        model.__init__ = _init


def _init(self: Model, *args: Any, **kwargs: Any) -> None:
    cls = self.__class__
    try:
        spec = _specs[cls]
    except KeyError:
        spec = _specs[cls] = _spec_of(cls)
        _install_keyword_init(cls, spec)
    if spec is None or (pre_init.receivers and pre_init.sender_receivers_cache.get(cls) is not NO_RECEIVERS):
        return _django_init(self, *args, **kwargs)
    # The loops below are written out for each case on purpose: this runs for
    # every instance built (every row read), and shared helpers yielding the
    # (attname, value) pairs made it 30-50% slower (1,000 instances, timeit).
    if args:
        if kwargs or len(args) != len(spec.attnames):
            return _django_init(self, *args, **kwargs)
        self._state = ModelState()
        if spec.direct:
            values = self.__dict__
            for attname, value in zip(spec.attnames, args):
                if value is not DEFERRED:
                    values[attname] = value
        else:
            for attname, value in zip(spec.attnames, args):
                if value is not DEFERRED:
                    setattr(self, attname, value)
    else:
        if not kwargs.keys() <= spec.names:
            return _django_init(self, *args, **kwargs)
        self._state = ModelState()
        if spec.direct:
            values = self.__dict__
            for attname, constant, default in spec.by_keyword:
                if attname in kwargs:
                    value = kwargs[attname]
                elif default is None:
                    value = constant
                else:
                    value = default()
                if value is not DEFERRED:
                    values[attname] = value
        else:
            for attname, constant, default in spec.by_keyword:
                if attname in kwargs:
                    value = kwargs[attname]
                elif default is None:
                    value = constant
                else:
                    value = default()
                if value is not DEFERRED:
                    setattr(self, attname, value)
    if post_init.receivers and post_init.sender_receivers_cache.get(cls) is not NO_RECEIVERS:
        post_init.send(sender=cls, instance=self)


def _spec_of(cls: type) -> _Spec | None:
    """The quick path of ``cls``, or None where Django's ``__init__`` must run."""
    meta = getattr(cls, "_meta", None)
    # The class's own __setattr__, if any (typed as object: the comparison is
    # by identity with object's).
    setattr_of: object = cls.__setattr__
    if meta is None or meta.abstract or setattr_of is not object.__setattr__:
        return None
    mro = cls.__mro__
    if Model not in mro:
        return None
    # Django's __init__ ends with super().__init__(): only object's may follow.
    after = mro[mro.index(Model) + 1 :]
    if any("__init__" in vars(base) for base in after if base is not object):
        return None
    names: set[str] = set()
    by_keyword: list[tuple[str, Any, Callable[[], Any] | None]] = []
    direct = True
    for field in meta.fields:
        if field.column is None or field.generated:
            continue
        names.add(field.attname)
        by_keyword.append((field.attname, *_default_of(field)))
        if not _stored_plainly(cls, field.attname):
            direct = False
    attnames = tuple(field.attname for field in meta.concrete_fields)
    for attname in attnames:
        if not _stored_plainly(cls, attname):
            direct = False
    if set(attnames) != names:
        return None  # a concrete field Django's keyword path skips, or the reverse
    return _Spec(frozenset(names), tuple(by_keyword), attnames, direct)


def _default_of(field: Any) -> tuple[Any, Callable[[], Any] | None]:
    """``(constant, None)`` where ``field.get_default()`` gives the same object
    at every call (a default that is not callable; no default nor
    db_default: None or ""), else ``(None, field.get_default)``."""
    if type(field).get_default is Field.get_default:
        if field.has_default() and not callable(field.default):
            return field.get_default(), None
        if not field.has_default() and not field.has_db_default():
            return field.get_default(), None
    return None, field.get_default


def _stored_plainly(cls: type, attname: str) -> bool:
    """Does ``setattr(obj, attname, v)`` on a new instance only store ``v``?"""
    for base in cls.__mro__:
        if attname in vars(base):
            return _plain_descriptor_type(type(vars(base)[attname]))
    return True


def _plain_descriptor_type(kind: type) -> bool:
    """Is ``kind`` one of _PLAIN_DESCRIPTORS, or a subclass of one that stores
    as it does (vinyl's own field descriptors: only their ``__get__`` differs)?"""
    if kind in _PLAIN_DESCRIPTORS:
        return True
    return any(
        issubclass(kind, plain)
        and getattr(kind, "__set__", None) is getattr(plain, "__set__", None)
        and getattr(kind, "__delete__", None) is getattr(plain, "__delete__", None)
        for plain in _PLAIN_DESCRIPTORS
    )


# -- the keyword path of one class, generated ---------------------------------
#
# ``Model(name=..., value=...)`` (every bulk_create of new objects builds
# them so) binds each keyword to a parameter of a function written for the
# class: no kwargs dict to copy and look into, and one attribute store per
# field. Anything else it is handed (positional values, other keywords, a
# subclass's instance, a pre_init receiver) goes to _init with the same
# arguments.


def _install_keyword_init(cls: type, spec: _Spec | None) -> None:
    """Give ``cls`` its generated ``__init__`` if vinyl installed _init on it,
    or if it is a vinyl class (``vinyl.models``) inheriting vinyl's ``__init__``
    from its model: ``Book.vinyl.create(...)`` builds instances of it."""
    if spec is None or not spec.direct:
        return
    own = vars(cls).get("__init__")
    if own is None and vars(cls).get("_vinyl_class") is True:
        own = cls.__init__  # type: ignore[misc]
    if not (own is _init or is_keyword_init(own)):
        return
    init = _keyword_init(cls, spec)
    if init is not None:
        cls.__init__ = init  # type: ignore[misc]


def is_keyword_init(init: Any) -> bool:
    """Is ``init`` an ``__init__`` this module generated for one class?"""
    return getattr(init, "_vinyl_keyword_init", False) is True


def builds_like_django(init: Any) -> bool:
    """Does ``init`` build the instances Django's ``Model.__init__`` builds?"""
    return init is _django_init or init is _init or is_keyword_init(init)


# Names of the generated code; no attname may take one (checked).
_PREFIX = "__v_"


def _keyword_init(cls: type, spec: _Spec) -> Callable[..., None] | None:
    """``__init__`` for ``cls``: _init's keyword path written out per field.

    A field whose attname is its name takes a keyword-only parameter; one
    whose attname differs (a foreign key's ``author_id``) is read from the
    remaining keywords, which then hold nothing else. The fallback hands
    _init the keywords given: the named ones in field order, then the rest
    in the caller's order (Django's ``__init__`` pops each field's by name,
    so only the rest's order can matter to it).
    """
    meta = cls._meta  # type: ignore[attr-defined]
    names = {field.attname: field.name for field in meta.concrete_fields}
    attnames = [attname for attname, _, _ in spec.by_keyword]
    if any(not a.isidentifier() or keyword.iskeyword(a) or a.startswith(_PREFIX) for a in attnames):
        return None
    named = [a for a in attnames if names.get(a) == a]
    others = [a for a in attnames if names.get(a) != a]
    # An attribute store per field where no class attribute has a setter
    # (a foreign key's only stores the value: its __dict__ entry, as _init).
    by_store = not any(hasattr(type(_class_attribute(cls, a)), "__set__") for a in attnames)
    namespace: dict[str, Any] = {
        "__v_cls": cls, "__v_spec": spec, "__v_specs": _specs, "__v_MISSING": _MISSING,
        "__v_DEFERRED": DEFERRED, "__v_State": ModelState, "__v_pre": pre_init, "__v_post": post_init,
        "__v_NO": NO_RECEIVERS, "__v_named": tuple(named), "__v_others": frozenset(others),
        "__v_fallback": _fallback,
    }
    params = "".join(f"{a}=__v_MISSING, " for a in named)
    lines = [
        f"def __init__(__v_self, /, *__v_args, {params}**__v_kwargs):",
        "    if (__v_args or type(__v_self) is not __v_cls or __v_specs.get(__v_cls) is not __v_spec",
        "            or (__v_kwargs and not __v_kwargs.keys() <= __v_others)",
        "            or (__v_pre.receivers and __v_pre.sender_receivers_cache.get(__v_cls) is not __v_NO)):",
        f"        return __v_fallback(__v_self, __v_args, __v_kwargs, __v_named, ({''.join(f'{a}, ' for a in named)}))",
        "    __v_self._state = __v_State()",
    ]
    if not by_store:
        lines.append("    __v_values = __v_self.__dict__")
    for k, (attname, constant, default) in enumerate(spec.by_keyword):
        if attname in named:
            lines.append(f"    if {attname} is __v_MISSING:")
        else:
            lines.append(f"    {attname} = __v_kwargs.get({attname!r}, __v_MISSING) if __v_kwargs else __v_MISSING")
            lines.append(f"    if {attname} is __v_MISSING:")
        store = f"__v_self.{attname}" if by_store else f"__v_values[{attname!r}]"
        if default is None and constant is not DEFERRED:
            # (A constant default is stored as it is: no DEFERRED to test.)
            namespace[f"__v_k{k}"] = constant
            lines.append(f"        {store} = __v_k{k}")
            lines.append(f"    elif {attname} is not __v_DEFERRED:")
            lines.append(f"        {store} = {attname}")
            continue
        if default is None:
            namespace[f"__v_k{k}"] = constant
            lines.append(f"        {attname} = __v_k{k}")
        else:
            namespace[f"__v_d{k}"] = default
            lines.append(f"        {attname} = __v_d{k}()")
        lines.append(f"    if {attname} is not __v_DEFERRED:")
        lines.append(f"        {store} = {attname}")
    lines.append("    if __v_post.receivers and __v_post.sender_receivers_cache.get(__v_cls) is not __v_NO:")
    lines.append("        __v_post.send(sender=__v_cls, instance=__v_self)")
    # The source holds only checked identifiers, integers and repr() strings.
    exec("\n".join(lines), namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init._vinyl_keyword_init = True
    return init


def _class_attribute(cls: type, name: str) -> Any:
    for base in cls.__mro__:
        if name in vars(base):
            return vars(base)[name]
    return None


def _fallback(self: Model, args: tuple, kwargs: dict, names: tuple, values: tuple) -> None:
    given = {name: value for name, value in zip(names, values) if value is not _MISSING}
    given.update(kwargs)
    return _init(self, *args, **given)


_MISSING = object()
