/*
 * vinyl.translate._rowbuild: model instances from rows, in C.
 *
 * An optional accelerator of vinyl.translate.instances.rows_maker: for one
 * query shape it builds the same instances as the Python code that module
 * generates, with the same calls in the same order:
 *
 *     for row in rows:                      (or: for (c0, ..., cN) in rows)
 *         obj = object.__new__(model)
 *         state = ModelState()
 *         state.<name> = <value>            for each (name, value) of state_attrs
 *         obj._state = state
 *         obj.<name> = row[<position>]      for each column, or, with use_dict,
 *                                           obj.__dict__[<name>] = row[<position>]
 *         objs.append(obj)
 *
 * An attribute store is PyObject_GenericSetAttr, what `obj.name = value`
 * runs for these classes (they have no __setattr__ of their own), a dict
 * store PyDict_SetItem on the dict PyObject_GenericGetDict gives (what
 * `obj.__dict__` gives). Only the public C API is used. Where vinyl.translate.instances finds the
 * module missing, stale or turned off (VINYL_NO_EXTENSIONS), it runs the
 * Python code instead.
 *
 * Bump ROWBUILD_VERSION whenever build_rows' arguments or meaning change:
 * the Python side refuses a module of another version.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define ROWBUILD_VERSION 1

/* The SHA-256 of this file, which setup.py passes when it compiles it: the
 * Python side compares it with the source beside the module, to refuse a
 * build older than its source (an editable checkout). */
#ifndef ROWBUILD_SOURCE_HASH
#define ROWBUILD_SOURCE_HASH ""
#endif

/* The empty tuple object.__new__ passes on as the arguments of tp_new. */
static PyObject *empty_tuple = NULL;
/* "_state", interned. */
static PyObject *str_state = NULL;

/* object.__new__(cls) for a class whose tp_new is object's: exactly the call
 * object.__new__ makes once it has checked its argument (build_rows checks
 * the classes it is given). Returns a new reference, or NULL with an error. */
static PyObject *
new_instance(PyTypeObject *cls)
{
    return cls->tp_new(cls, empty_tuple, NULL);
}

/* Column `position` of `row`, as a new reference (NULL with an error set).
 * A tuple is read directly; any other row through the sequence protocol,
 * as row[position] reads an asyncpg Record. */
static PyObject *
column(PyObject *row, Py_ssize_t position)
{
    if (PyTuple_CheckExact(row)) {
        if (position >= PyTuple_GET_SIZE(row)) {
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
            return NULL;
        }
        PyObject *value = PyTuple_GET_ITEM(row, position);
        return Py_NewRef(value);
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

/* One instance from one row (see the header comment). Returns a new
 * reference, or NULL with an error set. */
static PyObject *
build_one(PyTypeObject *model, PyTypeObject *state_type, PyObject *state_attrs, PyObject *row,
          const Py_ssize_t *positions, PyObject *names, int use_dict)
{
    PyObject *obj = NULL, *state = NULL, *dict = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);

    obj = new_instance(model);
    if (obj == NULL) {
        goto error;
    }
    state = new_instance(state_type);
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
    Py_CLEAR(state);

    if (use_dict) {
        /* obj.__dict__: what the attribute gives for these classes. */
        dict = PyObject_GenericGetDict(obj, NULL);
        if (dict == NULL) {
            goto error;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = column(row, positions[i]);
        if (value == NULL) {
            goto error;
        }
        PyObject *name = PyTuple_GET_ITEM(names, i);
        int stored = use_dict ? PyDict_SetItem(dict, name, value) : PyObject_GenericSetAttr(obj, name, value);
        Py_DECREF(value);
        if (stored < 0) {
            goto error;
        }
    }
    Py_XDECREF(dict);
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
 * (called directly: the names are str). */
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
        PyErr_Format(PyExc_TypeError, "%s must create its instances as object's do", what);
        return -1;
    }
    return 0;
}

/* The checks of build_rows' arguments that its loop relies on; fills
 * `columns` (PyMem_Free it) with the positions as C integers. Returns 0, or
 * -1 with an error set. */
static int
check_arguments(PyObject *model, PyObject *state_type, PyObject *state_attrs, PyObject *positions,
                PyObject *names, Py_ssize_t **columns)
{
    if (check_plain_class(model, "model", 0) < 0 || check_plain_class(state_type, "state_type", 1) < 0) {
        return -1;
    }
    if (!PyTuple_Check(state_attrs)) {
        PyErr_SetString(PyExc_TypeError, "state_attrs must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(state_attrs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(state_attrs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "state_attrs must hold (str, value) pairs");
            return -1;
        }
    }
    if (!PyTuple_Check(positions) || !PyTuple_Check(names) || PyTuple_GET_SIZE(positions) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_TypeError, "positions and names must be tuples of one length");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    *columns = PyMem_New(Py_ssize_t, n ? n : 1);
    if (*columns == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t position = PyLong_AsSsize_t(PyTuple_GET_ITEM(positions, i));
        if (position == -1 && PyErr_Occurred()) {
            goto error;
        }
        if (position < 0 || !PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "positions must be ints >= 0 and names str");
            goto error;
        }
        (*columns)[i] = position;
    }
    return 0;

error:
    PyMem_Free(*columns);
    *columns = NULL;
    return -1;
}

PyDoc_STRVAR(build_rows_doc,
"build_rows(model, state_type, state_attrs, rows, positions, names, use_dict, width) -> list\n\n"
"One instance of `model` per row of `rows` (see vinyl.translate.instances).\n"
"`state_attrs`: ((name, value), ...) set on each ModelState; `positions`,\n"
"`names`: equal-length tuples of ints and of str; `use_dict`: store the\n"
"columns in the instance's __dict__, not as attributes; `width`: -1, or the\n"
"number of values every row must have.");

static PyObject *
build_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "build_rows takes exactly 8 arguments");
        return NULL;
    }
    PyObject *model = args[0], *state_type = args[1], *state_attrs = args[2], *rows = args[3];
    PyObject *positions = args[4], *names = args[5];
    int use_dict = PyObject_IsTrue(args[6]);
    Py_ssize_t width = PyLong_AsSsize_t(args[7]);
    if (use_dict < 0 || (width == -1 && PyErr_Occurred())) {
        return NULL;
    }
    Py_ssize_t *columns = NULL;
    if (check_arguments(model, state_type, state_attrs, positions, names, &columns) < 0) {
        return NULL;
    }

    PyObject *objs = NULL;
    /* A list or tuple as it is, any other iterable as a list of its rows. */
    PyObject *seq = PySequence_Fast(rows, "rows must be iterable");
    if (seq == NULL) {
        goto error;
    }
    objs = PyList_New(0);
    if (objs == NULL) {
        goto error;
    }
    /* The size is read at every step, as a list's iterator reads it: code run
     * by a collection during the loop could (in theory) change a list. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *row = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        PyObject *obj = NULL;
        if (width < 0 || check_width(row, width) == 0) {
            obj = build_one((PyTypeObject *)model, (PyTypeObject *)state_type, state_attrs, row, columns, names, use_dict);
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
    PyMem_Free(columns);
    return objs;

error:
    Py_XDECREF(objs);
    Py_XDECREF(seq);
    PyMem_Free(columns);
    return NULL;
}

static PyMethodDef rowbuild_methods[] = {
    {"build_rows", (PyCFunction)(void (*)(void))build_rows, METH_FASTCALL, build_rows_doc},
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
