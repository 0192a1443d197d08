/* The native twin of the file list's lines in aether/pack/manifest.py.
 *
 * A manifest lists every file as one line of JSON, tens of thousands of them for a
 * node_modules tree; formatting them in Python costs more than a microsecond each, on the
 * thread that waits for the compressor to finish. This writes the same text in one pass, as
 * the UTF-8 bytes the manifest file holds:
 * "    " + ",\n    ".join(lines) + "\n", each line what manifest._files_json makes,
 * json.dumps(..., sort_keys=True, ensure_ascii=False) of the record. It answers None for
 * anything it does not expect (a record that is not a 4-tuple of str, int, int, str, a path
 * that cannot be UTF-8), and the Python code renders the list, so the format lives there.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t size;
    size_t capacity;
} Text;

static int
reserve(Text *text, size_t more)
{
    if (text->size + more <= text->capacity) {
        return 0;
    }
    size_t capacity = text->capacity ? text->capacity * 2 : 1 << 20;
    while (capacity < text->size + more) {
        capacity *= 2;
    }
    char *data = realloc(text->data, capacity);
    if (data == NULL) {
        return -1;
    }
    text->data = data;
    text->capacity = capacity;
    return 0;
}

static void
put(Text *text, const char *bytes, size_t size)
{
    memcpy(text->data + text->size, bytes, size);
    text->size += size;
}

/* An unsigned number in a base up to 10, without leading zeros beyond `width` digits. */
static void
put_number(Text *text, unsigned long long value, unsigned base, int width)
{
    char digits[32];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % base);
        value /= base;
    } while (value);
    while (count < width) {
        digits[count++] = '0';
    }
    while (count) {
        text->data[text->size++] = digits[--count];
    }
}

/* A JSON string as json.encoder.encode_basestring writes it: quotes, backslashes and
 * control characters escaped, everything else as it is. Room for 6 bytes per input byte. */
static void
put_json_string(Text *text, const char *value, Py_ssize_t size)
{
    static const char DIGITS[] = "0123456789abcdef";
    char *out = text->data + text->size;
    *out++ = '"';
    for (Py_ssize_t index = 0; index < size; index++) {
        unsigned char c = (unsigned char)value[index];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            memcpy(out, "u00", 3);
            out[3] = DIGITS[c >> 4];
            out[4] = DIGITS[c & 15];
            out += 5;
        }
    }
    *out++ = '"';
    text->size = (size_t)(out - text->data);
}

/* One record's line, with its indent and separator; 1 when the record is not as expected. */
static int
put_line(Text *text, PyObject *record, int last)
{
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 4) {
        return 1;
    }
    PyObject *path = PyTuple_GET_ITEM(record, 0), *size = PyTuple_GET_ITEM(record, 1);
    PyObject *mode = PyTuple_GET_ITEM(record, 2), *digest = PyTuple_GET_ITEM(record, 3);
    if (!PyUnicode_Check(path) || !PyLong_CheckExact(size) || !PyLong_CheckExact(mode)
        || !PyUnicode_Check(digest)) {
        return 1;
    }
    Py_ssize_t path_size, digest_size;
    const char *path_text = PyUnicode_AsUTF8AndSize(path, &path_size);
    const char *digest_text = path_text ? PyUnicode_AsUTF8AndSize(digest, &digest_size) : NULL;
    if (digest_text == NULL) {
        PyErr_Clear(); /* a lone surrogate, say: the Python code says what it makes of it */
        return 1;
    }
    long long size_value = PyLong_AsLongLong(size);
    long mode_value = PyLong_AsLong(mode);
    if (PyErr_Occurred() || size_value < 0 || mode_value < 0) {
        PyErr_Clear();
        return 1;
    }
    if (reserve(text, 160 + (size_t)digest_size + 6 * (size_t)path_size) < 0) {
        PyErr_NoMemory();
        return -1;
    }
#define PUT_LITERAL(literal) put(text, literal, sizeof(literal) - 1)
    PUT_LITERAL("    {\"blake3\": \"");
    put(text, digest_text, (size_t)digest_size);
    PUT_LITERAL("\", \"mode\": \"");
    put_number(text, (unsigned long long)mode_value, 8, 4);
    PUT_LITERAL("\", \"path\": ");
    put_json_string(text, path_text, path_size);
    PUT_LITERAL(", \"size\": ");
    put_number(text, (unsigned long long)size_value, 10, 1);
    if (last) {
        PUT_LITERAL("}\n");
    }
    else {
        PUT_LITERAL("},\n");
    }
#undef PUT_LITERAL
    return 0;
}

PyDoc_STRVAR(file_lines_doc,
"file_lines(records) -> bytes | None\n\n"
"The manifest's lines for a non-empty list of file records (path, size, mode, blake3), as\n"
"manifest.py renders them, in UTF-8; None when a record is not what it expects.");

static PyObject *
file_lines(PyObject *Py_UNUSED(module), PyObject *records)
{
    if (!PyList_Check(records) || PyList_GET_SIZE(records) == 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    Text text = {NULL, 0, 0};
    if (reserve(&text, (size_t)count * 192) < 0) { /* a line is ~130 bytes in a node_modules */
        return PyErr_NoMemory();
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        int outcome = put_line(&text, PyList_GET_ITEM(records, index), index == count - 1);
        if (outcome != 0) {
            free(text.data);
            if (outcome < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    PyObject *result = PyBytes_FromStringAndSize(text.data, (Py_ssize_t)text.size);
    free(text.data);
    return result;
}

static PyMethodDef methods[] = {
    {"file_lines", file_lines, METH_O, file_lines_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aether.pack._manifest",
    .m_doc = "The manifest's file lines: the native twin of manifest.py's rendering.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__manifest(void)
{
    return PyModuleDef_Init(&module_def);
}
