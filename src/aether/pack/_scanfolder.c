/* The native fast paths of walk.Walker.children (scan: one folder's files and subfolders as
 * entries) and of treestamp (stamp: a whole tree's lstat facts as text).
 *
 * A node_modules tree is tens of thousands of plain files and folders; listing them costs a
 * few system calls per folder, but building each entry in Python costs more than that. This
 * lists a folder with readdir and builds the same entries walk.py builds. It only answers
 * when every name in the folder is ordinary: anything else (a symlink, a socket, a file
 * system that does not report entry types, a name that is not UTF-8, a folder that cannot be
 * read) returns None, and the Python walk lists that folder, so its rules and its messages
 * live in one place.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

PyDoc_STRVAR(scan_doc,
"scan(path, prefix, excluded, excluded_dir_names, new_entry) -> list | None\n\n"
"The entries of the folder at path (unsorted) as walk.Entry tuples made by new_entry from\n"
"(prefix + name, member name bytes, 'file' or 'dir', path/name, None); names in\n"
"excluded (relative paths) or, for folders, in excluded_dir_names are left out. None when\n"
"the folder holds anything but plainly named files and folders, or cannot be read.");

static PyObject *str_file;
static PyObject *str_dir;
static PyObject *str_slash;

/* One entry from a name; 1 when made, 0 when left out, -1 on an error. */
static int
add_entry(PyObject *found, const char *name, size_t name_size, int is_dir, PyObject *path,
          PyObject *prefix, PyObject *excluded, PyObject *excluded_dir_names,
          PyObject *new_entry)
{
    PyObject *text = PyUnicode_DecodeUTF8(name, (Py_ssize_t)name_size, "strict");
    if (text == NULL) {
        return -1;
    }
    PyObject *rel = PyUnicode_Concat(prefix, text);
    int result = -1;
    PyObject *raw = NULL, *source = NULL, *values = NULL, *entry = NULL;
    if (rel == NULL) {
        goto done;
    }
    int skip = PySet_Contains(excluded, rel);
    if (skip == 0 && is_dir) {
        skip = PySet_Contains(excluded_dir_names, text);
    }
    if (skip != 0) {
        result = skip < 0 ? -1 : 0;
        goto done;
    }
    /* rel is prefix (UTF-8 already) + a name that decoded strictly: it encodes as is. */
    Py_ssize_t rel_size;
    const char *rel_utf8 = PyUnicode_AsUTF8AndSize(rel, &rel_size);
    if (rel_utf8 == NULL) {
        goto done;
    }
    raw = PyBytes_FromStringAndSize(NULL, rel_size + is_dir);
    if (raw == NULL) {
        goto done;
    }
    memcpy(PyBytes_AS_STRING(raw), rel_utf8, (size_t)rel_size);
    if (is_dir) {
        PyBytes_AS_STRING(raw)[rel_size] = '/';
    }
    /* What os.DirEntry.path gives: the folder, a slash unless it ends with one, the name. */
    Py_ssize_t path_size = PyUnicode_GET_LENGTH(path);
    if (path_size > 0 && PyUnicode_READ_CHAR(path, path_size - 1) != '/') {
        PyObject *with_slash = PyUnicode_Concat(path, str_slash);
        if (with_slash == NULL) {
            goto done;
        }
        source = PyUnicode_Concat(with_slash, text);
        Py_DECREF(with_slash);
    }
    else {
        source = PyUnicode_Concat(path, text);
    }
    if (source == NULL) {
        goto done;
    }
    values = PyTuple_Pack(5, rel, raw, is_dir ? str_dir : str_file, source, Py_None);
    if (values == NULL) {
        goto done;
    }
    entry = PyObject_CallOneArg(new_entry, values);
    if (entry == NULL || PyList_Append(found, entry) < 0) {
        goto done;
    }
    result = 1;
done:
    Py_DECREF(text);
    Py_XDECREF(rel);
    Py_XDECREF(raw);
    Py_XDECREF(source);
    Py_XDECREF(values);
    Py_XDECREF(entry);
    return result;
}

/* A growing byte buffer (raw allocations: used without the GIL). */
typedef struct {
    char *data;
    size_t size, capacity;
} Text;

static int
text_add(Text *text, const char *data, size_t size)
{
    if (text->size + size > text->capacity) {
        size_t capacity = (text->capacity + size) * 2;
        char *grown = PyMem_RawRealloc(text->data, capacity);
        if (grown == NULL) {
            return -1;
        }
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->size, data, size);
    text->size += size;
    return 0;
}

/* The folder's names and types, read without the GIL: "name\0" records, types apart. */
typedef struct {
    Text names;
    Text types;
    size_t count;
} Listing;

static int
listing_add(Listing *listing, const char *name, unsigned char type)
{
    if (text_add(&listing->names, name, strlen(name) + 1) < 0
        || text_add(&listing->types, (const char *)&type, 1) < 0) {
        return -1;
    }
    listing->count++;
    return 0;
}

/* 1 when every entry is a regular file or a folder, 0 when something else is there or the
 * folder cannot be read, -1 when memory ran out. */
static int
read_folder(const char *folder, Listing *listing)
{
    DIR *dir = opendir(folder);
    if (dir == NULL) {
        return 0;
    }
    int result = 1;
    for (;;) {
        errno = 0; /* readdir tells the end from an error only through errno */
        struct dirent *item = readdir(dir);
        if (item == NULL) {
            if (errno != 0) {
                result = 0;
            }
            break;
        }
        const char *name = item->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        if (item->d_type != DT_REG && item->d_type != DT_DIR) {
            result = 0;
            break;
        }
        if (listing_add(listing, name, item->d_type) < 0) {
            result = -1;
            break;
        }
    }
    closedir(dir);
    return result;
}

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan takes 5 arguments");
        return NULL;
    }
    PyObject *path = args[0], *prefix = args[1], *excluded = args[2];
    PyObject *excluded_dir_names = args[3], *new_entry = args[4];
    if (!PyUnicode_Check(path) || !PyUnicode_Check(prefix) || !PyAnySet_Check(excluded)
        || !PyAnySet_Check(excluded_dir_names)) {
        PyErr_SetString(PyExc_TypeError, "scan needs str paths and sets of names");
        return NULL;
    }
    PyObject *folder = PyUnicode_EncodeFSDefault(path);
    if (folder == NULL) {
        return NULL;
    }
    Listing listing = {{NULL, 0, 0}, {NULL, 0, 0}, 0};
    int complete;
    Py_BEGIN_ALLOW_THREADS
    complete = read_folder(PyBytes_AS_STRING(folder), &listing);
    Py_END_ALLOW_THREADS
    Py_DECREF(folder);
    PyObject *found = NULL;
    if (complete < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (complete == 0) {
        found = Py_NewRef(Py_None);
        goto done;
    }
    found = PyList_New(0);
    if (found == NULL) {
        goto done;
    }
    const char *name = listing.names.data;
    for (size_t index = 0; index < listing.count; index++) {
        size_t size = strlen(name);
        int is_dir = (unsigned char)listing.types.data[index] == DT_DIR;
        int made = add_entry(found, name, size, is_dir, path, prefix, excluded,
                             excluded_dir_names, new_entry);
        if (made < 0) {
            Py_CLEAR(found);
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear(); /* not UTF-8: the Python walk refuses it by name */
                found = Py_NewRef(Py_None);
            }
            goto done;
        }
        name += size + 1;
    }
done:
    PyMem_RawFree(listing.names.data);
    PyMem_RawFree(listing.types.data);
    return found;
}

/* --- stamp: treestamp.stamp_python, natively ------------------------------------------- */

PyDoc_STRVAR(stamp_doc,
"stamp(path, prefix) -> bytes\n\n"
"One line per entry below the folder at path, depth first, each folder's entries sorted by\n"
"name (as bytes), a folder's line before its contents: prefix + relative path, NUL, then\n"
"inode, mode, size, mtime and ctime (ns) from lstat in decimal, separated by spaces, newline.\n"
"'unreadable <prefix><rel>' for a folder that cannot be listed; an entry that cannot be\n"
"lstat'ed is left out. The same bytes as treestamp.stamp_python. Runs without the GIL.");

static int
compare_names(const void *left, const void *right)
{
    return strcmp(*(const char *const *)left, *(const char *const *)right);
}

typedef struct {
    Text out;
    const char *prefix;
    size_t prefix_size;
    char path[PATH_MAX + 1]; /* the folder being listed, then "/" and the relative path */
    size_t rel_start;        /* where the relative path starts in path */
} Stamp;

static int
add_unreadable(Stamp *stamp, size_t path_size)
{
    size_t rel_size = path_size > stamp->rel_start ? path_size - stamp->rel_start : 0;
    size_t prefix_size = stamp->prefix_size;
    if (rel_size == 0 && prefix_size > 0 && stamp->prefix[prefix_size - 1] == '/') {
        prefix_size--; /* the top folder is named by the prefix, without its slash */
    }
    return text_add(&stamp->out, "unreadable ", 11) < 0
                   || text_add(&stamp->out, stamp->prefix, prefix_size) < 0
                   || text_add(&stamp->out, stamp->path + stamp->rel_start, rel_size) < 0
                   || text_add(&stamp->out, "\n", 1) < 0
               ? -1
               : 0;
}

/* The lines below the folder stamp->path[:path_size]; 0 when done, -1 out of memory. */
static int
stamp_folder(Stamp *stamp, size_t path_size)
{
    char *path = stamp->path;
    path[path_size] = '\0';
    DIR *dir = opendir(path);
    Listing listing = {{NULL, 0, 0}, {NULL, 0, 0}, 0};
    int listed = dir == NULL ? 0 : 1;
    while (listed == 1) {
        errno = 0;
        struct dirent *item = readdir(dir);
        if (item == NULL) {
            listed = errno == 0 ? 2 : 0;
            break;
        }
        const char *name = item->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        if (listing_add(&listing, name, 0) < 0) {
            listed = -1;
        }
    }
    int result = listed < 0 ? -1 : 0;
    const char **names = NULL;
    if (listed == 0) {
        result = add_unreadable(stamp, path_size);
    }
    if (listed <= 0) {
        goto done;
    }
    names = PyMem_RawMalloc((listing.count + 1) * sizeof(char *));
    if (names == NULL) {
        result = -1;
        goto done;
    }
    const char *name = listing.names.data;
    for (size_t index = 0; index < listing.count; index++) {
        names[index] = name;
        name += strlen(name) + 1;
    }
    qsort(names, listing.count, sizeof(char *), compare_names);
    int fd = dirfd(dir);
    path[path_size] = '/';
    size_t base = path_size + 1; /* where an entry's name goes: path is "<folder>/<name>" */
    for (size_t index = 0; index < listing.count && result == 0; index++) {
        size_t size = strlen(names[index]);
        struct stat info;
        if (base + size >= PATH_MAX) {
            continue; /* a path too long to lstat: the Python walk leaves it out too */
        }
        if (fstatat(fd, names[index], &info, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        memcpy(path + base, names[index], size);
        char facts[160];
        int facts_size = snprintf(
            facts, sizeof facts, "%c%llu %u %lld %lld %lld\n", 0,
            (unsigned long long)info.st_ino, (unsigned)info.st_mode, (long long)info.st_size,
            (long long)info.st_mtim.tv_sec * 1000000000LL + info.st_mtim.tv_nsec,
            (long long)info.st_ctim.tv_sec * 1000000000LL + info.st_ctim.tv_nsec);
        if (text_add(&stamp->out, stamp->prefix, stamp->prefix_size) < 0
            || text_add(&stamp->out, path + stamp->rel_start, base + size - stamp->rel_start) < 0
            || text_add(&stamp->out, facts, (size_t)facts_size) < 0) {
            result = -1;
            break;
        }
        if (S_ISDIR(info.st_mode)) {
            result = stamp_folder(stamp, base + size);
        }
    }
done:
    if (dir != NULL) {
        closedir(dir);
    }
    path[path_size] = '\0';
    PyMem_RawFree(names);
    PyMem_RawFree(listing.names.data);
    PyMem_RawFree(listing.types.data);
    return result;
}

static PyObject *
stamp(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "stamp takes a str path and a bytes prefix");
        return NULL;
    }
    PyObject *encoded = PyUnicode_EncodeFSDefault(args[0]);
    if (encoded == NULL) {
        return NULL;
    }
    size_t size = (size_t)PyBytes_GET_SIZE(encoded);
    if (size == 0 || size + 2 >= PATH_MAX || strlen(PyBytes_AS_STRING(encoded)) != size) {
        Py_DECREF(encoded);
        PyErr_SetString(PyExc_ValueError, "stamp needs a path shorter than PATH_MAX, no NUL");
        return NULL;
    }
    Stamp *stamp = PyMem_RawCalloc(1, sizeof(Stamp));
    if (stamp == NULL) {
        Py_DECREF(encoded);
        return PyErr_NoMemory();
    }
    memcpy(stamp->path, PyBytes_AS_STRING(encoded), size);
    Py_DECREF(encoded);
    while (size > 1 && stamp->path[size - 1] == '/') {
        size--; /* "folder/" lists as "folder" */
    }
    stamp->rel_start = size + 1;
    /* The prefix is only read, and the caller holds it for the whole call. */
    stamp->prefix = PyBytes_AS_STRING(args[1]);
    stamp->prefix_size = (size_t)PyBytes_GET_SIZE(args[1]);
    int result;
    Py_BEGIN_ALLOW_THREADS
    result = stamp_folder(stamp, size);
    Py_END_ALLOW_THREADS
    PyObject *lines = NULL;
    if (result < 0) {
        PyErr_NoMemory();
    }
    else {
        lines = PyBytes_FromStringAndSize(stamp->out.data, (Py_ssize_t)stamp->out.size);
    }
    PyMem_RawFree(stamp->out.data);
    PyMem_RawFree(stamp);
    return lines;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"stamp", (PyCFunction)(void (*)(void))stamp, METH_FASTCALL, stamp_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *Py_UNUSED(module))
{
    str_file = PyUnicode_InternFromString("file");
    str_dir = PyUnicode_InternFromString("dir");
    str_slash = PyUnicode_InternFromString("/");
    return (str_file && str_dir && str_slash) ? 0 : -1;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aether.pack._scanfolder",
    .m_doc = "Folder listings natively: walk entries (walk.py) and tree stamps (treestamp.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__scanfolder(void)
{
    return PyModuleDef_Init(&module_def);
}
