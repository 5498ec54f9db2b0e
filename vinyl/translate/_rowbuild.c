/*
 * vinyl.translate._rowbuild: model instances from rows, in C (and, in the
 * section at the end, the loops that attach prefetched rows to their owners).
 *
 * An optional accelerator of vinyl.translate.instances' rows_maker and
 * joined_rows_maker: for one query shape it builds the same instances as
 * the Python code that module generates, with the same calls in the same
 * order:
 *
 *     for row in rows:                      (or: for (c0, ..., cN) in rows)
 *         obj = object.__new__(model)
 *         state = ModelState()
 *         state.<name> = <value>            for each (name, value) of state_attrs
 *         obj._state = state
 *         obj.<name> = <value>              for each column, or, with use_dict,
 *                                           obj.__dict__[<name>] = <value>
 *                                           (<value>: row[<position>], through its
 *                                           converters where it has some)
 *         (select_related: each joined object, built the same way from its
 *         own columns, or None where its key is None; then
 *         state.fields_cache = {<back>: <parent>, <cache name>: <joined>, ...})
 *         objs.append(obj)
 *
 * A shape is a tuple (model, start, names, use_dict, joins, converters):
 * column i of the model is row[start + i]; each join is a tuple (shape, key
 * position, cache name, back name or None); converters is None or holds one
 * item per column: None, or a conversion (calls, expression, connection,
 * slot, naive, epoch) of the column's value, what the expression
 * vinyl.translate.converters.value_expressions writes for it computes:
 *
 *     v = call(v, expression, connection)   for each call, in order
 *
 * With a slot (an int; None: none), the first call is Django's MySQL
 * datetime converter, make_aware(v, connection.timezone), and batch[slot]
 * (build_rows' last argument, one tuple per call) is the aware epoch of
 * that zone (None without a zone): a datetime of exactly datetime's class
 * and no tzinfo (with `naive`, any fold; else fold 0) then becomes the same
 * date and time with the epoch's tzinfo and fold 0, the value `aware +
 * (v - epoch)` gives, built directly; None stays None without the call.
 *
 * An attribute store is PyObject_GenericSetAttr, what `obj.name = value`
 * runs for these classes (they have no __setattr__ of their own: checked);
 * a dict store is PyDict_SetItem on the dict PyObject_GenericGetDict gives
 * (what `obj.__dict__` gives). Only the public C API is used. Where
 * vinyl.translate.instances finds this module missing, stale or turned off
 * (VINYL_NO_EXTENSIONS), it runs the Python code instead.
 *
 * Bump ROWBUILD_VERSION whenever build_rows' arguments or meaning change:
 * the Python side refuses a module of another version.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#define ROWBUILD_VERSION 5

/* The SHA-256 of this file, which setup.py passes when it compiles it: the
 * Python side compares it with the source beside the module, to refuse a
 * build older than its source (an editable checkout). */
#ifndef ROWBUILD_SOURCE_HASH
#define ROWBUILD_SOURCE_HASH ""
#endif

/* The empty tuple object.__new__ passes on as the arguments of tp_new. */
static PyObject *empty_tuple = NULL;
/* "_state" and "fields_cache", interned. */
static PyObject *str_state = NULL;
static PyObject *str_fields_cache = NULL;

/* The items of a shape and of a join (see the header comment). */
enum { SHAPE_MODEL, SHAPE_START, SHAPE_NAMES, SHAPE_USE_DICT, SHAPE_JOINS, SHAPE_CONVERTERS, SHAPE_SIZE };
enum { JOIN_SHAPE, JOIN_KEY, JOIN_CACHE_NAME, JOIN_BACK, JOIN_SIZE };
enum { CONV_CALLS, CONV_EXPRESSION, CONV_CONNECTION, CONV_SLOT, CONV_NAIVE, CONV_EPOCH, CONV_SIZE };

/* Item `i` of a checked shape (its start) or join (its key position) as a
 * C integer: check_shape made sure it is an int >= 0 that fits, so this
 * cannot fail. */
static Py_ssize_t
position_at(PyObject *tuple, Py_ssize_t i)
{
    return PyLong_AsSsize_t(PyTuple_GET_ITEM(tuple, i));
}

/* Column `position` of `row`, as a new reference (NULL with an error set).
 * A tuple is read directly; any other row through the sequence protocol,
 * as row[position] reads an asyncpg Record (the same item, the same
 * IndexError). */
static PyObject *
column(PyObject *row, Py_ssize_t position)
{
    if (PyTuple_CheckExact(row)) {
        if (position < 0 || position >= PyTuple_GET_SIZE(row)) {
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
            return NULL;
        }
        return Py_NewRef(PyTuple_GET_ITEM(row, position));
    }
    return PySequence_GetItem(row, position);
}

/* The check `for (c0, ..., c<width-1>) in rows` makes of each row: exactly
 * `width` values, else ValueError with CPython's messages. Returns 0, or -1
 * with an error set. */
static int
check_width(PyObject *row, Py_ssize_t width)
{
    Py_ssize_t size = PyTuple_CheckExact(row) ? PyTuple_GET_SIZE(row) : PySequence_Size(row);
    if (size < 0) {
        return -1;
    }
    if (size < width) {
        PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected %zd, got %zd)", width, size);
        return -1;
    }
    if (size > width) {
        PyErr_Format(PyExc_ValueError, "too many values to unpack (expected %zd)", width);
        return -1;
    }
    return 0;
}

/* call(value, expression, connection), as the generated Python calls a
 * converter. Returns a new reference, or NULL with an error set. */
static PyObject *
call_converter(PyObject *call, PyObject *value, PyObject *conversion)
{
    PyObject *args[3] = {value, PyTuple_GET_ITEM(conversion, CONV_EXPRESSION), PyTuple_GET_ITEM(conversion, CONV_CONNECTION)};
    return PyObject_Vectorcall(call, args, 3, NULL);
}

/* Django's MySQL datetime converter of `value` (not None), where the batch
 * has the aware epoch `aware` of the zone (see the header comment): a new
 * reference, or NULL with an error set. */
static PyObject *
aware_datetime(PyObject *conversion, PyObject *value, PyObject *aware)
{
    int naive = PyTuple_GET_ITEM(conversion, CONV_NAIVE) == Py_True;
    if (aware == Py_None || !PyDateTime_CheckExact(value)
        || (!naive && (PyDateTime_DATE_GET_TZINFO(value) != Py_None || PyDateTime_DATE_GET_FOLD(value) != 0))) {
        return call_converter(PyTuple_GET_ITEM(PyTuple_GET_ITEM(conversion, CONV_CALLS), 0), value, conversion);
    }
    if (PyDateTime_CheckExact(aware) && PyDateTime_DATE_GET_TZINFO(value) == Py_None) {
        /* What datetime + timedelta builds for a datetime of exactly this
         * class: the fields of `value`, the epoch's tzinfo, fold 0. */
        return PyDateTimeAPI->DateTime_FromDateAndTimeAndFold(
            PyDateTime_GET_YEAR(value), PyDateTime_GET_MONTH(value), PyDateTime_GET_DAY(value),
            PyDateTime_DATE_GET_HOUR(value), PyDateTime_DATE_GET_MINUTE(value), PyDateTime_DATE_GET_SECOND(value),
            PyDateTime_DATE_GET_MICROSECOND(value), PyDateTime_DATE_GET_TZINFO(aware), 0, PyDateTimeAPI->DateTimeType);
    }
    /* (`naive` and an aware value: the subtraction raises, as it does in Python.) */
    PyObject *delta = PyNumber_Subtract(value, PyTuple_GET_ITEM(conversion, CONV_EPOCH));
    if (delta == NULL) {
        return NULL;
    }
    PyObject *result = PyNumber_Add(aware, delta);
    Py_DECREF(delta);
    return result;
}

/* `value` (a reference this takes) through its conversion: a new
 * reference, or NULL with an error set. (Not inlined: the loop over the
 * columns of a shape without converters stays as short as it was.) */
Py_NO_INLINE static PyObject *
convert(PyObject *conversion, PyObject *value, PyObject *batch)
{
    PyObject *calls = PyTuple_GET_ITEM(conversion, CONV_CALLS);
    PyObject *slot = PyTuple_GET_ITEM(conversion, CONV_SLOT);
    Py_ssize_t first = 0;
    PyObject *converted = value;
    if (slot != Py_None) {
        first = 1;
        if (value != Py_None) {
            converted = aware_datetime(conversion, value, PyTuple_GET_ITEM(batch, PyLong_AsSsize_t(slot)));
            Py_DECREF(value);
            if (converted == NULL) {
                return NULL;
            }
        }
    }
    for (Py_ssize_t k = first; k < PyTuple_GET_SIZE(calls); k++) {
        PyObject *next = call_converter(PyTuple_GET_ITEM(calls, k), converted, conversion);
        Py_DECREF(converted);
        if (next == NULL) {
            return NULL;
        }
        converted = next;
    }
    return converted;
}

/* obj.<name> = <value> (with a dict: dict[<name>] = <value>) for each
 * name, <value> row[start + i] through its conversion where `converters`
 * (NULL: none) has one. Returns 0, or -1 with an error set. */
static inline int
store_columns(PyObject *obj, PyObject *dict, PyObject *names, PyObject *row, Py_ssize_t start, PyObject *converters,
              PyObject *batch)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *value = column(row, start + i);
        if (value == NULL) {
            return -1;
        }
        if (converters != NULL && PyTuple_GET_ITEM(converters, i) != Py_None) {
            value = convert(PyTuple_GET_ITEM(converters, i), value, batch);
            if (value == NULL) {
                return -1;
            }
        }
        PyObject *name = PyTuple_GET_ITEM(names, i);
        int stored = dict != NULL ? PyDict_SetItem(dict, name, value) : PyObject_GenericSetAttr(obj, name, value);
        Py_DECREF(value);
        if (stored < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *build_one(PyObject *shape, PyTypeObject *state_type, PyObject *state_attrs, PyObject *batch,
                           PyObject *row, PyObject *back, PyObject *parent);

/* state.fields_cache = {back: parent, <cache name>: <joined object>, ...}
 * for the joins of `shape` (none: `back` alone; neither: nothing is set).
 * Returns 0, or -1 with an error set. */
static int
build_joins(PyObject *shape, PyTypeObject *state_type, PyObject *state_attrs, PyObject *batch, PyObject *row,
            PyObject *obj, PyObject *state, PyObject *back, PyObject *parent)
{
    PyObject *joins = PyTuple_GET_ITEM(shape, SHAPE_JOINS);
    if (PyTuple_GET_SIZE(joins) == 0 && back == Py_None) {
        return 0;
    }
    PyObject *cache = PyDict_New();
    if (cache == NULL) {
        return -1;
    }
    if (back != Py_None && PyDict_SetItem(cache, back, parent) < 0) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(joins); i++) {
        PyObject *join = PyTuple_GET_ITEM(joins, i);
        PyObject *key = column(row, position_at(join, JOIN_KEY));
        if (key == NULL) {
            goto error;
        }
        int null_key = key == Py_None;
        Py_DECREF(key);
        PyObject *joined = null_key ? Py_NewRef(Py_None)
                                    : build_one(PyTuple_GET_ITEM(join, JOIN_SHAPE), state_type, state_attrs, batch, row,
                                                PyTuple_GET_ITEM(join, JOIN_BACK), obj);
        if (joined == NULL) {
            goto error;
        }
        int stored = PyDict_SetItem(cache, PyTuple_GET_ITEM(join, JOIN_CACHE_NAME), joined);
        Py_DECREF(joined);
        if (stored < 0) {
            goto error;
        }
    }
    if (PyObject_GenericSetAttr(state, str_fields_cache, cache) < 0) {
        goto error;
    }
    Py_DECREF(cache);
    return 0;

error:
    Py_DECREF(cache);
    return -1;
}

/* One instance of `shape` from one row, with its joined objects; `back` and
 * `parent`: the entry of its parent in its cache (Py_None and NULL: none).
 * Returns a new reference, or NULL with an error set. */
static PyObject *
build_one(PyObject *shape, PyTypeObject *state_type, PyObject *state_attrs, PyObject *batch, PyObject *row,
          PyObject *back, PyObject *parent)
{
    PyTypeObject *model = (PyTypeObject *)PyTuple_GET_ITEM(shape, SHAPE_MODEL);
    Py_ssize_t start = position_at(shape, SHAPE_START);
    PyObject *names = PyTuple_GET_ITEM(shape, SHAPE_NAMES);
    int use_dict = PyTuple_GET_ITEM(shape, SHAPE_USE_DICT) == Py_True;
    PyObject *converters = PyTuple_GET_ITEM(shape, SHAPE_CONVERTERS);
    PyObject *obj = NULL, *state = NULL, *dict = NULL;

    /* object.__new__(model) and ModelState(): for classes without __new__
     * or __init__ of their own (checked), the calls these make. */
    obj = model->tp_new(model, empty_tuple, NULL);
    if (obj == NULL) {
        goto error;
    }
    state = state_type->tp_new(state_type, empty_tuple, NULL);
    if (state == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(state_attrs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(state_attrs, i);
        if (PyObject_GenericSetAttr(state, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
            goto error;
        }
    }
    if (PyObject_GenericSetAttr(obj, str_state, state) < 0) {
        goto error;
    }
    if (use_dict) {
        dict = PyObject_GenericGetDict(obj, NULL);
        if (dict == NULL) {
            goto error;
        }
    }
    /* (Two calls of the inlined loop: without converters it has no test of them.) */
    if ((converters == Py_None ? store_columns(obj, dict, names, row, start, NULL, batch)
                               : store_columns(obj, dict, names, row, start, converters, batch)) < 0) {
        goto error;
    }
    if (build_joins(shape, state_type, state_attrs, batch, row, obj, state, back, parent) < 0) {
        goto error;
    }
    Py_XDECREF(dict);
    Py_DECREF(state);
    return obj;

error:
    Py_XDECREF(dict);
    Py_XDECREF(state);
    Py_XDECREF(obj);
    return NULL;
}

/* A class object.__new__ (and, for the state, a call without arguments)
 * handles as it handles `object`: no __new__ or __init__ of its own. Then
 * cls->tp_new(cls, (), NULL) is what those calls do. And a class without a
 * __setattr__ of its own: then an attribute store is PyObject_GenericSetAttr
 * (called directly: the names are str). Returns 0, or -1 with an error set. */
static int
check_plain_class(PyObject *cls, const char *what, int check_init)
{
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "%s must be a class", what);
        return -1;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    if (type->tp_new != PyBaseObject_Type.tp_new || (check_init && type->tp_init != PyBaseObject_Type.tp_init)
        || type->tp_setattro != PyObject_GenericSetAttr) {
        PyErr_Format(PyExc_TypeError, "%s must create and set up its instances as object's do", what);
        return -1;
    }
    return 0;
}

static int
shape_error(const char *message)
{
    PyErr_Format(PyExc_TypeError, "shape: %s", message);
    return -1;
}

/* Is the position an int that row[position] reads (>= 0, a Py_ssize_t)? */
static int
check_position(PyObject *position)
{
    if (!PyLong_Check(position)) {
        return shape_error("positions must be ints");
    }
    Py_ssize_t value = PyLong_AsSsize_t(position);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < 0) {
        return shape_error("positions must be >= 0");
    }
    return 0;
}

/* Everything convert reads of a conversion without checking it (its slot
 * an index of `batch`). Returns 0, or -1 with an error set. */
static int
check_conversion(PyObject *conversion, PyObject *batch)
{
    if (!PyTuple_CheckExact(conversion) || PyTuple_GET_SIZE(conversion) != CONV_SIZE) {
        return shape_error("a conversion must be a tuple (calls, expression, connection, slot, naive, epoch)");
    }
    PyObject *calls = PyTuple_GET_ITEM(conversion, CONV_CALLS);
    if (!PyTuple_CheckExact(calls)) {
        return shape_error("a conversion's calls must be a tuple");
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(calls); k++) {
        if (!PyCallable_Check(PyTuple_GET_ITEM(calls, k))) {
            return shape_error("a conversion's calls must be callable");
        }
    }
    if (!PyBool_Check(PyTuple_GET_ITEM(conversion, CONV_NAIVE))) {
        return shape_error("a conversion's naive must be a bool");
    }
    PyObject *slot = PyTuple_GET_ITEM(conversion, CONV_SLOT);
    if (slot == Py_None) {
        return 0;
    }
    if (PyTuple_GET_SIZE(calls) == 0) {
        return shape_error("a conversion with a slot must have a call");
    }
    if (check_position(slot) < 0) {
        return -1;
    }
    if (PyLong_AsSsize_t(slot) >= PyTuple_GET_SIZE(batch)) {
        return shape_error("a conversion's slot must be an index of the batch");
    }
    return 0;
}

/* Everything build_one reads of `shape` without checking it, checked once
 * per call, at every depth (a shape nests as deep as select_related joins).
 * Returns 0, or -1 with an error set. */
static int
check_shape(PyObject *shape, PyObject *batch)
{
    if (!PyTuple_CheckExact(shape) || PyTuple_GET_SIZE(shape) != SHAPE_SIZE) {
        return shape_error("must be a tuple (model, start, names, use_dict, joins, converters)");
    }
    if (check_plain_class(PyTuple_GET_ITEM(shape, SHAPE_MODEL), "model", 0) < 0) {
        return -1;
    }
    if (check_position(PyTuple_GET_ITEM(shape, SHAPE_START)) < 0) {
        return -1;
    }
    PyObject *names = PyTuple_GET_ITEM(shape, SHAPE_NAMES);
    if (!PyTuple_CheckExact(names)) {
        return shape_error("names must be a tuple");
    }
    if (position_at(shape, SHAPE_START) > PY_SSIZE_T_MAX - PyTuple_GET_SIZE(names)) {
        return shape_error("start + len(names) must be a Py_ssize_t");
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            return shape_error("names must be str");
        }
    }
    if (!PyBool_Check(PyTuple_GET_ITEM(shape, SHAPE_USE_DICT))) {
        return shape_error("use_dict must be a bool");
    }
    PyObject *converters = PyTuple_GET_ITEM(shape, SHAPE_CONVERTERS);
    if (converters != Py_None) {
        if (!PyTuple_CheckExact(converters) || PyTuple_GET_SIZE(converters) != PyTuple_GET_SIZE(names)) {
            return shape_error("converters must be None or a tuple of one item per name");
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(converters); i++) {
            PyObject *conversion = PyTuple_GET_ITEM(converters, i);
            if (conversion != Py_None && check_conversion(conversion, batch) < 0) {
                return -1;
            }
        }
    }
    PyObject *joins = PyTuple_GET_ITEM(shape, SHAPE_JOINS);
    if (!PyTuple_CheckExact(joins)) {
        return shape_error("joins must be a tuple");
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(joins); i++) {
        PyObject *join = PyTuple_GET_ITEM(joins, i);
        if (!PyTuple_CheckExact(join) || PyTuple_GET_SIZE(join) != JOIN_SIZE) {
            return shape_error("a join must be a tuple (shape, key position, cache name, back name or None)");
        }
        PyObject *back = PyTuple_GET_ITEM(join, JOIN_BACK);
        if (!PyUnicode_Check(PyTuple_GET_ITEM(join, JOIN_CACHE_NAME)) || (back != Py_None && !PyUnicode_Check(back))) {
            return shape_error("a join's cache name must be str, its back name str or None");
        }
        if (check_position(PyTuple_GET_ITEM(join, JOIN_KEY)) < 0 || check_shape(PyTuple_GET_ITEM(join, JOIN_SHAPE), batch) < 0) {
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(build_rows_doc,
"build_rows(shape, state_type, state_attrs, rows, width, batch) -> list\n\n"
"One instance per row of `rows`, of the shape `shape` (see\n"
"vinyl.translate.instances): (model, start, names, use_dict, joins,\n"
"converters). `state_attrs`: ((name, value), ...) set on each state_type()\n"
"made; `width`: -1, or the number of values every row must have;\n"
"`batch`: the tuple the conversions' slots index.");

static PyObject *
build_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "build_rows takes exactly 6 arguments");
        return NULL;
    }
    PyObject *shape = args[0], *state_type = args[1], *state_attrs = args[2], *rows = args[3], *batch = args[5];
    Py_ssize_t width = PyLong_AsSsize_t(args[4]);
    if (width == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyTuple_CheckExact(batch)) {
        PyErr_SetString(PyExc_TypeError, "batch must be a tuple");
        return NULL;
    }
    if (check_shape(shape, batch) < 0 || check_plain_class(state_type, "state_type", 1) < 0) {
        return NULL;
    }
    if (!PyTuple_CheckExact(state_attrs)) {
        PyErr_SetString(PyExc_TypeError, "state_attrs must be a tuple");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(state_attrs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(state_attrs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "state_attrs must hold (str, value) pairs");
            return NULL;
        }
    }

    /* A list or tuple as it is, any other iterable as a list of its rows. */
    PyObject *seq = PySequence_Fast(rows, "rows must be iterable");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *objs = PyList_New(0);
    if (objs == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    /* The size is read at every step, as a list's iterator reads it: code run
     * by a collection during the loop could (in theory) change a list. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *row = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *obj = NULL;
        if (width < 0 || check_width(row, width) == 0) {
            obj = build_one(shape, (PyTypeObject *)state_type, state_attrs, batch, row, Py_None, NULL);
        }
        Py_DECREF(row);
        if (obj == NULL) {
            goto error;
        }
        int appended = PyList_Append(objs, obj);
        Py_DECREF(obj);
        if (appended < 0) {
            goto error;
        }
    }
    Py_DECREF(seq);
    return objs;

error:
    Py_DECREF(objs);
    Py_DECREF(seq);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Prefetching (vinyl.prefetch): the loops that attach prefetched rows to
 * their owners, and that cache each owner's queryset, with the same calls
 * in the same order as the Python loops they stand for (vinyl.prefetch's
 * _attach_owners and _group_rows, vinyl._compat's cache_prefetched), run
 * where vinyl runs this module's build_rows. Objects of the caller's are read and written as Python
 * reads and writes them (PyObject_GetAttr, PyObject_SetAttr, ...); only the
 * querysets made here, of a class checked once per call, are stored into
 * with PyObject_GenericSetAttr.
 * ------------------------------------------------------------------------ */

/* "__dict__" and "append", interned; builtins.getattr (before 3.13). */
static PyObject *str_dict = NULL;
static PyObject *str_append = NULL;
#if PY_VERSION_HEX < 0x030D0000
static PyObject *builtin_getattr = NULL;
#endif

/* getattr(obj, name, None): a new reference (None where obj has no such
 * attribute), or NULL with an error set. No AttributeError is made and
 * dropped, as in getattr's own code. */
static PyObject *
getattr_or_none(PyObject *obj, PyObject *name)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *value;
    int found = PyObject_GetOptionalAttr(obj, name, &value);
    if (found < 0) {
        return NULL;
    }
    return found ? value : Py_NewRef(Py_None);
#else
    PyObject *args[3] = {obj, name, Py_None};
    return PyObject_Vectorcall(builtin_getattr, args, 3, NULL);
#endif
}

/* raise KeyError(key), as dict's subscript raises it (a tuple key wrapped). */
static void
key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* mapping[key]: a new reference, or NULL with an error set (a dict's
 * missing key: KeyError(key), made here without a second lookup). */
static PyObject *
subscript(PyObject *mapping, PyObject *key)
{
    if (PyDict_CheckExact(mapping)) {
        PyObject *value = PyDict_GetItemWithError(mapping, key);
        if (value == NULL) {
            if (!PyErr_Occurred()) {
                key_error(key);
            }
            return NULL;
        }
        return Py_NewRef(value);
    }
    return PyObject_GetItem(mapping, key);
}

/* group.append(row) (a list's append called directly). Returns 0, or -1
 * with an error set. */
static int
append(PyObject *group, PyObject *row)
{
    if (PyList_CheckExact(group)) {
        return PyList_Append(group, row);
    }
    PyObject *done = PyObject_CallMethodOneArg(group, str_append, row);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* The key of a prefetched row, as vinyl.prefetch's _attach_owners reads it:
 *
 *     try:
 *         key = row.__dict__[attname]
 *     except KeyError:  # deferred: the descriptor knows
 *         key = getattr(row, attname)
 *
 * A new reference, or NULL with an error set. */
static PyObject *
row_key(PyObject *row, PyObject *attname)
{
    PyObject *dict = PyObject_GetAttr(row, str_dict);
    if (dict == NULL) {
        return NULL;
    }
    PyObject *key;
    if (PyDict_CheckExact(dict)) {
        key = Py_XNewRef(PyDict_GetItemWithError(dict, attname));
        Py_DECREF(dict);
        if (key != NULL || PyErr_Occurred()) {
            return key;
        }
    }
    else {
        key = PyObject_GetItem(dict, attname);
        Py_DECREF(dict);
        if (key != NULL || !PyErr_ExceptionMatches(PyExc_KeyError)) {
            return key;
        }
        PyErr_Clear();
    }
    return PyObject_GetAttr(row, attname);
}

PyDoc_STRVAR(attach_owners_doc,
"attach_owners(rows, attname, cache_name, owners, groups, plain) -> None\n\n"
"For each row of `rows` (a list), as vinyl.prefetch's _attach_owners\n"
"does it: its key (row.__dict__[attname], else getattr(row, attname));\n"
"the row appended to groups[key]; owners[key] cached on it as\n"
"`cache_name`: with `plain`, row._state.fields_cache = {cache_name:\n"
"owners[key]}, else set in row._state.fields_cache unless it holds that\n"
"name already.");

static PyObject *
attach_owners(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "attach_owners takes exactly 6 arguments");
        return NULL;
    }
    PyObject *rows = args[0], *attname = args[1], *cache_name = args[2], *owners = args[3], *groups = args[4];
    if (!PyList_CheckExact(rows)) {
        PyErr_SetString(PyExc_TypeError, "rows must be a list");
        return NULL;
    }
    if (!PyUnicode_Check(attname) || !PyUnicode_Check(cache_name)) {
        PyErr_SetString(PyExc_TypeError, "attname and cache_name must be str");
        return NULL;
    }
    int plain = PyObject_IsTrue(args[5]);
    if (plain < 0) {
        return NULL;
    }
    /* (The size read at every step, as a list's iterator reads it.) */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i));
        PyObject *key = NULL, *group = NULL, *owner = NULL, *state = NULL, *cache = NULL;
        int failed = 1;
        key = row_key(row, attname);
        if (key == NULL) {
            goto next;
        }
        group = subscript(groups, key);
        if (group == NULL || append(group, row) < 0) {
            goto next;
        }
        if (plain) {
            /* row._state.fields_cache = {cache_name: owners[key]} */
            owner = subscript(owners, key);
            if (owner == NULL || (cache = PyDict_New()) == NULL || PyDict_SetItem(cache, cache_name, owner) < 0
                || (state = PyObject_GetAttr(row, str_state)) == NULL
                || PyObject_SetAttr(state, str_fields_cache, cache) < 0) {
                goto next;
            }
        }
        else {
            /* cache = row._state.fields_cache
             * if cache_name not in cache: cache[cache_name] = owners[key] */
            if ((state = PyObject_GetAttr(row, str_state)) == NULL
                || (cache = PyObject_GetAttr(state, str_fields_cache)) == NULL) {
                goto next;
            }
            int held = PySequence_Contains(cache, cache_name);
            if (held < 0) {
                goto next;
            }
            if (!held && ((owner = subscript(owners, key)) == NULL || PyObject_SetItem(cache, cache_name, owner) < 0)) {
                goto next;
            }
        }
        failed = 0;
    next:
        Py_XDECREF(cache);
        Py_XDECREF(state);
        Py_XDECREF(owner);
        Py_XDECREF(group);
        Py_XDECREF(key);
        Py_DECREF(row);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* Is `key` a non-zero int of exactly int's class (`type(key) is int and key`)? */
static inline int
nonzero_int(PyObject *key)
{
    /* (The truth of an exact int runs no code and cannot fail.) */
    return PyLong_CheckExact(key) && PyObject_IsTrue(key);
}

PyDoc_STRVAR(group_rows_doc,
"group_rows(rows, attname, ints, prepare, groups) -> None\n\n"
"For each row of `rows` (a list), as vinyl.prefetch's _group_rows does\n"
"it: key = getattr(row, attname), through prepare(key) unless `ints` and\n"
"it is a non-zero int; the row appended to groups[key], a list made\n"
"for the first row of each key.");

static PyObject *
group_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "group_rows takes exactly 5 arguments");
        return NULL;
    }
    PyObject *rows = args[0], *attname = args[1], *prepare = args[3], *groups = args[4];
    if (!PyList_CheckExact(rows) || !PyDict_CheckExact(groups)) {
        PyErr_SetString(PyExc_TypeError, "rows must be a list, groups a dict");
        return NULL;
    }
    if (!PyUnicode_Check(attname)) {
        PyErr_SetString(PyExc_TypeError, "attname must be str");
        return NULL;
    }
    int ints = PyObject_IsTrue(args[2]);
    if (ints < 0) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = Py_NewRef(PyList_GET_ITEM(rows, i));
        PyObject *key = PyObject_GetAttr(row, attname);
        int failed = key == NULL;
        if (!failed && !(ints && nonzero_int(key))) {
            PyObject *prepared = PyObject_CallOneArg(prepare, key);
            Py_SETREF(key, prepared);
            failed = key == NULL;
        }
        if (!failed) {
            /* group = groups.get(key); a new list, or group.append(row) */
            PyObject *group = Py_XNewRef(PyDict_GetItemWithError(groups, key));
            if (group == NULL) {
                if (PyErr_Occurred() || (group = PyList_New(1)) == NULL) {
                    failed = 1;
                }
                else {
                    PyList_SET_ITEM(group, 0, Py_NewRef(row));
                    failed = PyDict_SetItem(groups, key, group) < 0;
                }
            }
            else {
                failed = append(group, row) < 0;
            }
            Py_XDECREF(group);
        }
        Py_XDECREF(key);
        Py_DECREF(row);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(cache_querysets_doc,
"cache_querysets(cls, shared, names, columns, objs, cache_attr, cache_name) -> None\n\n"
"For each i, obj of `objs`, as vinyl._compat.cache_prefetched does it:\n"
"qs = object.__new__(cls); each (name, value) of `shared` set on it, then\n"
"names[j] = columns[j][i] for each j; then getattr(obj, cache_attr, None)\n"
"gets cache_name: qs, or (None) obj.<cache_attr> = {cache_name: qs}.\n"
"`columns`: a tuple of lists, as many as `names`; the loop stops at the\n"
"shortest of them and `objs`, as zip() does.");

static PyObject *
cache_querysets(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "cache_querysets takes exactly 7 arguments");
        return NULL;
    }
    PyObject *cls = args[0], *shared = args[1], *names = args[2], *columns = args[3], *objs = args[4];
    PyObject *cache_attr = args[5], *cache_name = args[6];
    if (check_plain_class(cls, "cls", 0) < 0) {
        return NULL;
    }
    if (!PyTuple_CheckExact(shared) || !PyTuple_CheckExact(names) || !PyTuple_CheckExact(columns)
        || PyTuple_GET_SIZE(columns) != PyTuple_GET_SIZE(names) || !PyList_CheckExact(objs)) {
        PyErr_SetString(PyExc_TypeError, "shared, names and columns must be tuples (one column per name), objs a list");
        return NULL;
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(shared); j++) {
        PyObject *pair = PyTuple_GET_ITEM(shared, j);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "shared must hold (str, value) pairs");
            return NULL;
        }
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, j)) || !PyList_CheckExact(PyTuple_GET_ITEM(columns, j))) {
            PyErr_SetString(PyExc_TypeError, "names must be str, columns lists");
            return NULL;
        }
    }
    if (!PyUnicode_Check(cache_attr)) {
        PyErr_SetString(PyExc_TypeError, "cache_attr must be str");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    /* (Every size read at every step, as zip() reads its lists'.) */
    for (Py_ssize_t i = 0;; i++) {
        if (i >= PyList_GET_SIZE(objs)) {
            break;
        }
        int ended = 0;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(columns); j++) {
            ended |= i >= PyList_GET_SIZE(PyTuple_GET_ITEM(columns, j));
        }
        if (ended) {
            break;
        }
        PyObject *obj = Py_NewRef(PyList_GET_ITEM(objs, i));
        PyObject *cache = NULL, *made = NULL;
        int failed = 1;
        PyObject *qs = type->tp_new(type, empty_tuple, NULL);
        if (qs == NULL) {
            goto next;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(shared); j++) {
            PyObject *pair = PyTuple_GET_ITEM(shared, j);
            if (PyObject_GenericSetAttr(qs, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
                goto next;
            }
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
            PyObject *column = PyTuple_GET_ITEM(columns, j);
            if (i >= PyList_GET_SIZE(column)) {  /* (shortened by a store's code) */
                PyErr_SetString(PyExc_RuntimeError, "a column of cache_querysets changed size");
                goto next;
            }
            PyObject *value = Py_NewRef(PyList_GET_ITEM(column, i));
            int stored = PyObject_GenericSetAttr(qs, PyTuple_GET_ITEM(names, j), value);
            Py_DECREF(value);
            if (stored < 0) {
                goto next;
            }
        }
        cache = getattr_or_none(obj, cache_attr);
        if (cache == NULL) {
            goto next;
        }
        if (cache == Py_None) {
            if ((made = PyDict_New()) == NULL || PyDict_SetItem(made, cache_name, qs) < 0
                || PyObject_SetAttr(obj, cache_attr, made) < 0) {
                goto next;
            }
        }
        else if (PyObject_SetItem(cache, cache_name, qs) < 0) {
            goto next;
        }
        failed = 0;
    next:
        Py_XDECREF(made);
        Py_XDECREF(cache);
        Py_XDECREF(qs);
        Py_DECREF(obj);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef rowbuild_methods[] = {
    {"build_rows", (PyCFunction)(void (*)(void))build_rows, METH_FASTCALL, build_rows_doc},
    {"attach_owners", (PyCFunction)(void (*)(void))attach_owners, METH_FASTCALL, attach_owners_doc},
    {"group_rows", (PyCFunction)(void (*)(void))group_rows, METH_FASTCALL, group_rows_doc},
    {"cache_querysets", (PyCFunction)(void (*)(void))cache_querysets, METH_FASTCALL, cache_querysets_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rowbuild_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vinyl.translate._rowbuild",
    .m_doc = "Model instances from rows, in C (see vinyl.translate.instances).",
    .m_size = -1,
    .m_methods = rowbuild_methods,
};

PyMODINIT_FUNC
PyInit__rowbuild(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    if (empty_tuple == NULL) {
        empty_tuple = PyTuple_New(0);
        if (empty_tuple == NULL) {
            return NULL;
        }
    }
    if (str_state == NULL) {
        str_state = PyUnicode_InternFromString("_state");
        if (str_state == NULL) {
            return NULL;
        }
    }
    if (str_fields_cache == NULL) {
        str_fields_cache = PyUnicode_InternFromString("fields_cache");
        if (str_fields_cache == NULL) {
            return NULL;
        }
    }
    if (str_dict == NULL && (str_dict = PyUnicode_InternFromString("__dict__")) == NULL) {
        return NULL;
    }
    if (str_append == NULL && (str_append = PyUnicode_InternFromString("append")) == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (builtin_getattr == NULL) {
        PyObject *builtins = PyImport_ImportModule("builtins");
        if (builtins == NULL) {
            return NULL;
        }
        builtin_getattr = PyObject_GetAttrString(builtins, "getattr");
        Py_DECREF(builtins);
        if (builtin_getattr == NULL) {
            return NULL;
        }
    }
#endif
    PyObject *module = PyModule_Create(&rowbuild_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "VERSION", ROWBUILD_VERSION) < 0
        || PyModule_AddStringConstant(module, "SOURCE_HASH", ROWBUILD_SOURCE_HASH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
