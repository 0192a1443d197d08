/* The native twin of natives.candidates in aether/pack/natives.py, over the pack's records.
 *
 * The native file check looks at a handful of members of a tree that holds tens of
 * thousands; picking them out with a regular expression per path costs ~10 ms on the thread
 * that ends the pack. This makes the same choice in one pass over the records: a name that
 * ends in .node, .so (with version numbers: .so.1.2), .dylib, .dll or .exe (the suffix may
 * stand before one trailing newline, as `$` lets it in Python), or an executable bit on a
 * file under a node_modules folder. It answers None for a record it does not expect (not a
 * tuple of at least three items, a path that is not a str or cannot be UTF-8, a mode that is
 * not an int) or a name it cannot judge byte by byte (a non-ASCII character where Python's
 * `\d` might see a digit), and the Python code chooses.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

static int
ends_with(const char *text, size_t size, const char *suffix)
{
    size_t length = strlen(suffix);
    return size >= length && memcmp(text + size - length, suffix, length) == 0;
}

static int
contains(const char *text, size_t size, const char *part)
{
    size_t length = strlen(part);
    for (size_t start = 0; start + length <= size; start++) {
        if (memcmp(text + start, part, length) == 0) {
            return 1;
        }
    }
    return 0;
}

/* `\.so(\.\d+)*` at the very end of text[0:size]; -1 when a non-ASCII character stands
 * after a `.so.` (Python's `\d` takes every Unicode digit: the Python code decides). */
static int
ends_shared_object(const char *text, size_t size)
{
    for (;;) {
        if (ends_with(text, size, ".so")) {
            return 1;
        }
        size_t digits = 0;
        while (digits < size && text[size - 1 - digits] >= '0' && text[size - 1 - digits] <= '9') {
            digits++;
        }
        if (digits < size && (unsigned char)text[size - 1 - digits] >= 0x80) {
            return contains(text, size - digits, ".so.") ? -1 : 0;
        }
        if (digits == 0 || digits == size || text[size - 1 - digits] != '.') {
            return 0;
        }
        size -= digits + 1;
    }
}

static int
ends_native(const char *text, size_t size)
{
    if (ends_with(text, size, ".node") || ends_with(text, size, ".dylib")
        || ends_with(text, size, ".dll") || ends_with(text, size, ".exe")) {
        return 1;
    }
    return ends_shared_object(text, size);
}

/* SUFFIXES.search(path): `$` matches at the end and before a final newline. */
static int
native_name(const char *text, size_t size)
{
    int found = ends_native(text, size);
    if (found == 0 && size > 0 && text[size - 1] == '\n') {
        found = ends_native(text, size - 1);
    }
    return found;
}

/* path.startswith("node_modules/") or "/node_modules/" in path */
static int
under_node_modules(const char *text, size_t size)
{
    static const char folder[] = "node_modules/";
    const size_t length = sizeof(folder) - 1;
    return (size >= length && memcmp(text, folder, length) == 0)
        || contains(text, size, "/node_modules/");
}

/* 1: a candidate, 0: not one, -1: an error set, 2: a record it does not expect. */
static int
is_candidate(PyObject *record)
{
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) < 3) {
        return 2;
    }
    PyObject *path = PyTuple_GET_ITEM(record, 0);
    PyObject *mode = PyTuple_GET_ITEM(record, 2);
    if (!PyUnicode_Check(path) || !PyLong_Check(mode)) {
        return 2;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(path, &size);
    if (text == NULL) {
        PyErr_Clear();
        return 2;
    }
    int named = native_name(text, (size_t)size);
    if (named != 0) {
        return named < 0 ? 2 : 1;
    }
    long bits = PyLong_AsLong(mode);
    if (bits == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 2;
    }
    return (bits & 0111) && under_node_modules(text, (size_t)size);
}

PyDoc_STRVAR(candidates_doc,
"candidates(records) -> list[str] | None\n\n"
"The paths of the records (path, size, mode, ...) that natives.candidates picks, in order;\n"
"None when a record is not what it expects.");

static PyObject *
candidates(PyObject *Py_UNUSED(module), PyObject *records)
{
    if (!PyList_Check(records)) {
        Py_RETURN_NONE;
    }
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(records); index++) {
        PyObject *record = PyList_GET_ITEM(records, index);
        int outcome = is_candidate(record);
        if (outcome == 2) {
            Py_DECREF(found);
            Py_RETURN_NONE;
        }
        if (outcome == 1 && PyList_Append(found, PyTuple_GET_ITEM(record, 0)) < 0) {
            Py_DECREF(found);
            return NULL;
        }
    }
    return found;
}

static PyMethodDef methods[] = {
    {"candidates", candidates, METH_O, candidates_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aether.pack._natives",
    .m_doc = "The native file check's candidates: the native twin of natives.candidates.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__natives(void)
{
    return PyModuleDef_Init(&module_def);
}
