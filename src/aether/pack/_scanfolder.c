/* The native fast paths of walk.Walker.children (scan: one folder's files and subfolders as
 * entries), walk.Walker.below (walk: a whole subtree's entries in archive order) and
 * treestamp (stamp: a whole tree's lstat facts as text).
 *
 * A node_modules tree is tens of thousands of plain files and folders; listing them costs a
 * few system calls per folder, but building each entry in Python costs more than that. This
 * lists a folder with readdir and builds the same entries walk.py builds. It only answers
 * when every name in the folder is ordinary: anything else (a symlink, a socket, a file
 * system that does not report entry types, a name that is not UTF-8, a folder that cannot be
 * read) returns None, and the Python walk lists that folder, so its rules and its messages
 * live in one place. walk does the depth-first order and each folder's sort here as well, and
 * calls back into Python only for the folders scan does not answer for; it is an iterator
 * that lists a folder when it reaches it, so it never holds the GIL for a whole subtree.
 * Its fill(batch, size) puts the next entries into a Batch instead, where the natively
 * listed ones stay names in C (_entries.h), which _batchread reads without an entry object
 * per member.
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

#include "_entries.h"

PyDoc_STRVAR(scan_doc,
"scan(path, prefix, excluded, excluded_dir_names, new_entry) -> list | None\n\n"
"The entries of the folder at path (unsorted) as walk.Entry tuples made by new_entry from\n"
"(prefix + name, member name bytes, 'file' or 'dir', path/name, None); names in\n"
"excluded (relative paths) or, for folders, in excluded_dir_names are left out. None when\n"
"the folder holds anything but plainly named files and folders, or cannot be read.");

static PyObject *str_file;
static PyObject *str_dir;
static PyObject *str_slash;

/* What every entry of one folder shares. */
typedef struct {
    PyObject *prefix;     /* the member path of the folder, with a slash ("" for the root) */
    PyObject *base;       /* the folder's path, with a slash unless it ends with one */
    PyObject *excluded, *excluded_dir_names, *new_entry;
    PyTypeObject *entry_type; /* the type new_entry made, once it has made one */
} Folder;

/* One entry from a name; 1 when made, 0 when left out, -1 on an error. */
static int
add_entry(PyObject *found, const char *name, size_t name_size, int is_dir, Folder *folder)
{
    PyObject *text = PyUnicode_DecodeUTF8(name, (Py_ssize_t)name_size, "strict");
    if (text == NULL) {
        return -1;
    }
    PyObject *rel = PyUnicode_Concat(folder->prefix, text);
    int result = -1;
    PyObject *raw = NULL, *source = NULL, *entry = NULL;
    if (rel == NULL) {
        goto done;
    }
    int skip = PySet_Contains(folder->excluded, rel);
    if (skip == 0 && is_dir) {
        skip = PySet_Contains(folder->excluded_dir_names, text);
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
    source = PyUnicode_Concat(folder->base, text);
    if (source == NULL) {
        goto done;
    }
    PyObject *kind = is_dir ? str_dir : str_file;
    if (folder->entry_type != NULL) {
        /* What tuple.__new__(Entry, values) makes, without the values' own tuple. */
        entry = folder->entry_type->tp_alloc(folder->entry_type, 5);
        if (entry == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(entry, 0, Py_NewRef(rel));
        PyTuple_SET_ITEM(entry, 1, Py_NewRef(raw));
        PyTuple_SET_ITEM(entry, 2, Py_NewRef(kind));
        PyTuple_SET_ITEM(entry, 3, Py_NewRef(source));
        PyTuple_SET_ITEM(entry, 4, Py_NewRef(Py_None));
    }
    else {
        PyObject *values = PyTuple_Pack(5, rel, raw, kind, source, Py_None);
        if (values == NULL) {
            goto done;
        }
        entry = PyObject_CallOneArg(folder->new_entry, values);
        Py_DECREF(values);
        if (entry == NULL) {
            goto done;
        }
        /* A plain tuple subclass (a named tuple) is allocated directly from now on. */
        PyTypeObject *type = Py_TYPE(entry);
        if (PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 5 && type != &PyTuple_Type
            && type->tp_alloc != NULL && type->tp_dictoffset == 0) {
            folder->entry_type = type;
        }
    }
    if (PyList_Append(found, entry) < 0) {
        goto done;
    }
    result = 1;
done:
    Py_DECREF(text);
    Py_XDECREF(rel);
    Py_XDECREF(raw);
    Py_XDECREF(source);
    Py_XDECREF(entry);
    return result;
}

/* A growing byte buffer (raw allocations: used without the GIL). */
typedef struct {
    char *data;
    size_t size, capacity;
} Text;

/* Room for size more bytes, counted in (the caller writes them). */
static int
text_extend(Text *text, size_t size)
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
    text->size += size;
    return 0;
}

static int
text_add(Text *text, const char *data, size_t size)
{
    if (text_extend(text, size) < 0) {
        return -1;
    }
    memcpy(text->data + text->size - size, data, size);
    return 0;
}

/* The folder's names and types, in raw memory (the stamp lists without the GIL): "name\0"
 * records, types apart. */
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

/* The entries of one folder (unsorted), None when it is not plain, NULL on an error. */
static PyObject *
scan_folder(PyObject *path, PyObject *prefix, PyObject *excluded, PyObject *excluded_dir_names,
            PyObject *new_entry)
{
    PyObject *folder = PyUnicode_EncodeFSDefault(path);
    if (folder == NULL) {
        return NULL;
    }
    Listing listing = {{NULL, 0, 0}, {NULL, 0, 0}, 0};
    Folder shared = {prefix, NULL, excluded, excluded_dir_names, new_entry, NULL};
    /* With the GIL held: a folder lists in microseconds, and a pack's walk gave the GIL up
     * and waited to take it back once per folder (16,000 times on a big tree) while the
     * reader and compressing threads, all busy, kept it. */
    int complete = read_folder(PyBytes_AS_STRING(folder), &listing);
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
    Py_ssize_t path_size = PyUnicode_GET_LENGTH(path);
    if (path_size > 0 && PyUnicode_READ_CHAR(path, path_size - 1) != '/') {
        shared.base = PyUnicode_Concat(path, str_slash);
    }
    else {
        shared.base = Py_NewRef(path);
    }
    found = shared.base == NULL ? NULL : PyList_New(0);
    if (found == NULL) {
        goto done;
    }
    const char *name = listing.names.data;
    for (size_t index = 0; index < listing.count; index++) {
        size_t size = strlen(name);
        int is_dir = (unsigned char)listing.types.data[index] == DT_DIR;
        int made = add_entry(found, name, size, is_dir, &shared);
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
    Py_XDECREF(shared.base);
    PyMem_RawFree(listing.names.data);
    PyMem_RawFree(listing.types.data);
    return found;
}

static int
check_sets(PyObject *path, PyObject *excluded, PyObject *excluded_dir_names)
{
    if (!PyUnicode_Check(path) || !PyAnySet_Check(excluded)
        || !PyAnySet_Check(excluded_dir_names)) {
        PyErr_SetString(PyExc_TypeError, "needs a str path and sets of names");
        return -1;
    }
    return 0;
}

static PyObject *
scan(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "scan takes 5 arguments");
        return NULL;
    }
    if (check_sets(args[0], args[2], args[3]) < 0 || !PyUnicode_Check(args[1])) {
        return NULL;
    }
    return scan_folder(args[0], args[1], args[2], args[3], args[4]);
}

/* --- walk: walk.Walker.below, natively --------------------------------------------------- */

PyDoc_STRVAR(walk_doc,
"walk(root, folder, excluded, excluded_dir_names, new_entry, children, by_children)\n"
"-> iterator\n\n"
"Every entry below folder (a walk.Entry that is a directory, or None for the folder at\n"
"root), itself excluded, in archive order: depth first, each folder's entries sorted by\n"
"their member name bytes. Plain folders are listed as scan lists them; children(folder)\n"
"lists the rest (folders scan does not answer for, and those whose prefix, the folder's\n"
"path and a slash, is in by_children), already sorted.");

/* Member-name bytes order (bytes comparison: memcmp, then the shorter first). */
static int
compare_raw(const void *left, const void *right)
{
    PyObject *a = PyTuple_GET_ITEM(*(PyObject *const *)left, 1);
    PyObject *b = PyTuple_GET_ITEM(*(PyObject *const *)right, 1);
    Py_ssize_t a_size = PyBytes_GET_SIZE(a), b_size = PyBytes_GET_SIZE(b);
    int order = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b),
                       (size_t)(a_size < b_size ? a_size : b_size));
    if (order != 0) {
        return order;
    }
    return a_size < b_size ? -1 : a_size > b_size;
}

typedef struct {
    PyObject *root, *excluded, *excluded_dir_names, *new_entry, *children, *by_children;
} Walk;

/* What the Python listing (walk.children) gives for folder: a new list; NULL on an error. */
static PyObject *
call_children(Walk *walk, PyObject *folder)
{
    PyObject *found = PyObject_CallOneArg(walk->children, folder);
    if (found != NULL && !PyList_CheckExact(found)) {
        Py_CLEAR(found);
        PyErr_SetString(PyExc_TypeError, "children must return a list");
    }
    return found;
}

/* The sorted entries directly inside folder (None: the root), a new list; NULL on an error. */
static PyObject *
list_folder(Walk *walk, PyObject *folder)
{
    PyObject *path, *prefix;
    if (folder == Py_None) {
        path = Py_NewRef(walk->root);
        prefix = PyUnicode_FromStringAndSize("", 0);
    }
    else {
        path = Py_NewRef(PyTuple_GET_ITEM(folder, 3));
        prefix = PyUnicode_Concat(PyTuple_GET_ITEM(folder, 0), str_slash);
    }
    PyObject *found = NULL;
    if (prefix == NULL) {
        goto done;
    }
    int python = PySet_Contains(walk->by_children, prefix);
    if (python < 0) {
        goto done;
    }
    if (!python) {
        if (!PyUnicode_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "walk needs entries with str sources");
            goto done;
        }
        found = scan_folder(path, prefix, walk->excluded, walk->excluded_dir_names,
                            walk->new_entry);
        if (found == NULL) {
            goto done;
        }
        if (found != Py_None) {
            /* Only this function holds the list, and every item is an entry made above. */
            PyListObject *list = (PyListObject *)found;
            qsort(list->ob_item, (size_t)Py_SIZE(list), sizeof(PyObject *), compare_raw);
            goto done;
        }
        Py_CLEAR(found);
    }
    found = call_children(walk, folder);
done:
    Py_DECREF(path);
    Py_XDECREF(prefix);
    return found;
}

static int
is_folder(PyObject *entry)
{
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 5) {
        PyErr_SetString(PyExc_TypeError, "walk needs walk.Entry items");
        return -1;
    }
    PyObject *kind = PyTuple_GET_ITEM(entry, 2);
    if (kind == str_dir) {
        return 1;
    }
    return PyUnicode_Check(kind) && PyUnicode_Compare(kind, str_dir) == 0;
}

typedef struct {
    PyObject *entries;
    Py_ssize_t next;
} Level;

/* The walk in progress: an iterator that lists each folder when the walk reaches it, so
 * a caller taking a few entries at a time holds the GIL for one folder's listing at most
 * (a whole subtree of tens of thousands of entries, listed in one call, held it for tens of
 * milliseconds while the reader and compressor threads waited for it). */
typedef struct {
    PyObject_HEAD
    Walk state; /* owned references */
    PyObject *folder; /* the folder to list first; NULL once it is listed */
    Level *levels;
    Py_ssize_t depth, capacity;
    struct Batching *batching; /* fill's own stack, once fill is called */
    int mode; /* WALK_UNUSED, then WALK_NEXT or WALK_FILL: one or the other */
} Walking;

enum { WALK_UNUSED = 0, WALK_NEXT = 1, WALK_FILL = 2 };
static void batching_free(struct Batching *batching);

static void
walking_clear(Walking *self)
{
    while (self->depth > 0) {
        Py_DECREF(self->levels[--self->depth].entries);
    }
    PyMem_Free(self->levels);
    self->levels = NULL;
    Py_CLEAR(self->folder);
}

static void
walking_dealloc(Walking *self)
{
    walking_clear(self);
    batching_free(self->batching);
    Py_XDECREF(self->state.root);
    Py_XDECREF(self->state.excluded);
    Py_XDECREF(self->state.excluded_dir_names);
    Py_XDECREF(self->state.new_entry);
    Py_XDECREF(self->state.children);
    Py_XDECREF(self->state.by_children);
    PyObject_Free(self);
}

/* Push the sorted listing of `folder`; -1 on an error (the walk is over then). */
static int
walking_push(Walking *self, PyObject *folder)
{
    PyObject *entries = list_folder(&self->state, folder);
    if (entries == NULL) {
        return -1;
    }
    if (self->depth == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 16;
        Level *grown = PyMem_Realloc(self->levels, (size_t)capacity * sizeof(Level));
        if (grown == NULL) {
            Py_DECREF(entries);
            PyErr_NoMemory();
            return -1;
        }
        self->levels = grown;
        self->capacity = capacity;
    }
    self->levels[self->depth++] = (Level){entries, 0};
    return 0;
}

static PyObject *
walking_next(Walking *self)
{
    if (self->mode == WALK_FILL) {
        PyErr_SetString(PyExc_TypeError, "a walk that fills batches is not iterated");
        return NULL;
    }
    self->mode = WALK_NEXT;
    if (self->folder != NULL) {
        PyObject *folder = self->folder;
        self->folder = NULL;
        int failed = walking_push(self, folder);
        Py_DECREF(folder);
        if (failed) {
            walking_clear(self);
            return NULL;
        }
    }
    while (self->depth > 0) {
        Level *level = &self->levels[self->depth - 1];
        if (level->next >= PyList_GET_SIZE(level->entries)) {
            Py_DECREF(level->entries);
            self->depth--;
            continue;
        }
        PyObject *entry = Py_NewRef(PyList_GET_ITEM(level->entries, level->next));
        level->next++;
        int inside = is_folder(entry);
        /* The listing below may run Python code; the entry is held meanwhile. */
        if (inside < 0 || (inside && walking_push(self, entry) < 0)) {
            Py_DECREF(entry);
            walking_clear(self);
            return NULL;
        }
        return entry;
    }
    return NULL; /* the end, without an exception */
}

/* --- Batch: walk entries kept in C (_entries.h) ------------------------------------------ */

static int compare_names(const void *left, const void *right);

typedef struct {
    int kind;        /* SLOT_FILE, SLOT_DIR, SLOT_PYTHON */
    PyObject *entry; /* owned: a SLOT_PYTHON slot's walk.Entry */
    size_t raw, raw_size, source, source_size; /* offsets into the batch's text */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    Py_ssize_t count, capacity;
    Text text; /* the native slots' member names and paths */
    PyObject *new_entry;
} Batch;

static PyTypeObject BatchType;

static int
batch_slot_room(Batch *batch)
{
    if (batch->count < batch->capacity) {
        return 0;
    }
    Py_ssize_t capacity = batch->capacity ? batch->capacity * 2 : 128;
    Slot *grown = PyMem_Realloc(batch->slots, (size_t)capacity * sizeof(Slot));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    batch->slots = grown;
    batch->capacity = capacity;
    return 0;
}

static int
batch_add_python(Batch *batch, PyObject *entry)
{
    if (batch_slot_room(batch) < 0) {
        return -1;
    }
    batch->slots[batch->count++] = (Slot){SLOT_PYTHON, Py_NewRef(entry), 0, 0, 0, 0};
    return 0;
}

/* A native entry: member name prefix + key (key: the name, a slash after a folder), source
 * folder + name (folder ends with a slash). */
static int
batch_add_native(Batch *batch, const char *prefix, size_t prefix_size, const char *key,
                 size_t key_size, const char *folder, size_t folder_size)
{
    int is_dir = key[key_size - 1] == '/';
    size_t name_size = key_size - (size_t)is_dir;
    Text *text = &batch->text;
    size_t raw = text->size;
    size_t raw_size = prefix_size + key_size;
    size_t source_size = folder_size + name_size;
    if (batch_slot_room(batch) < 0) {
        return -1;
    }
    /* Room for both at once, then the pieces in place. */
    if (text_extend(text, raw_size + source_size + 1) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    char *out = text->data + raw;
    memcpy(out, prefix, prefix_size);
    memcpy(out + prefix_size, key, key_size);
    memcpy(out + raw_size, folder, folder_size);
    memcpy(out + raw_size + folder_size, key, name_size);
    out[raw_size + source_size] = '\0';
    batch->slots[batch->count++] = (Slot){is_dir ? SLOT_DIR : SLOT_FILE, NULL, raw, raw_size,
                                          raw + raw_size, folder_size + name_size};
    return 0;
}

/* The walk.Entry of a native entry (the fallback paths ask for it). */
static PyObject *
make_entry(PyObject *new_entry, const char *raw, size_t raw_size, int is_dir,
           const char *source, size_t source_size)
{
    PyObject *path = PyUnicode_DecodeUTF8(raw, (Py_ssize_t)(raw_size - (size_t)is_dir), "strict");
    PyObject *raw_bytes = PyBytes_FromStringAndSize(raw, (Py_ssize_t)raw_size);
    PyObject *source_text = PyUnicode_DecodeFSDefaultAndSize(source, (Py_ssize_t)source_size);
    PyObject *entry = NULL;
    if (path != NULL && raw_bytes != NULL && source_text != NULL) {
        PyObject *values = PyTuple_Pack(5, path, raw_bytes, is_dir ? str_dir : str_file,
                                        source_text, Py_None);
        if (values != NULL) {
            entry = PyObject_CallOneArg(new_entry, values);
            Py_DECREF(values);
        }
    }
    Py_XDECREF(path);
    Py_XDECREF(raw_bytes);
    Py_XDECREF(source_text);
    return entry;
}

static PyObject *
batch_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *new_entry;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)
        || !PyArg_UnpackTuple(args, "Batch", 1, 1, &new_entry)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Batch takes one argument, new_entry");
        }
        return NULL;
    }
    Batch *batch = (Batch *)type->tp_alloc(type, 0);
    if (batch != NULL) {
        batch->new_entry = Py_NewRef(new_entry);
    }
    return (PyObject *)batch;
}

static void
batch_dealloc(Batch *batch)
{
    for (Py_ssize_t index = 0; index < batch->count; index++) {
        Py_XDECREF(batch->slots[index].entry);
    }
    PyMem_Free(batch->slots);
    PyMem_RawFree(batch->text.data);
    Py_XDECREF(batch->new_entry);
    Py_TYPE(batch)->tp_free((PyObject *)batch);
}

static Py_ssize_t
batch_length(Batch *batch)
{
    return batch->count;
}

static PyObject *
batch_item(Batch *batch, Py_ssize_t index)
{
    if (index < 0 || index >= batch->count) {
        PyErr_SetString(PyExc_IndexError, "batch index out of range");
        return NULL;
    }
    Slot *slot = &batch->slots[index];
    if (slot->kind == SLOT_PYTHON) {
        return Py_NewRef(slot->entry);
    }
    const char *text = batch->text.data;
    return make_entry(batch->new_entry, text + slot->raw, slot->raw_size, slot->kind == SLOT_DIR,
                      text + slot->source, slot->source_size);
}

static PyObject *
batch_append(Batch *batch, PyObject *entry)
{
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 5) {
        PyErr_SetString(PyExc_TypeError, "a batch holds walk.Entry items");
        return NULL;
    }
    return batch_add_python(batch, entry) < 0 ? NULL : Py_NewRef(Py_None);
}

static void
api_slot(PyObject *object, Py_ssize_t index, EntrySlot *out)
{
    Batch *batch = (Batch *)object;
    Slot *slot = &batch->slots[index];
    const char *text = batch->text.data;
    *out = (EntrySlot){slot->kind, slot->entry, NULL, 0, NULL};
    if (slot->kind != SLOT_PYTHON) {
        out->raw = text + slot->raw;
        out->raw_size = (Py_ssize_t)slot->raw_size;
        out->source = text + slot->source;
    }
}

static EntriesApi entries_api = {&BatchType, api_slot};

static PySequenceMethods batch_as_sequence = {
    .sq_length = (lenfunc)batch_length,
    .sq_item = (ssizeargfunc)batch_item,
};

static PyMethodDef batch_methods[] = {
    {"append", (PyCFunction)batch_append, METH_O, "Add a walk.Entry at the end."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aether.pack._scanfolder.Batch",
    .tp_doc = "Batch(new_entry): walk entries in archive order, the natively listed ones as\n"
              "names in C; batch[index] is a walk.Entry (made by new_entry when needed).",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = batch_new,
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_as_sequence = &batch_as_sequence,
    .tp_methods = batch_methods,
};

/* --- Walking.fill: the walk into batches, no walk.Entry per natively listed entry -------- */

/* Names as "name\0" records (UTF-8), to compare with a folder's names without a str each. */
typedef struct {
    Text text;
    size_t count;
} Names;

/* The set's str items as Names; one that is not UTF-8 matches no name the walk lists. */
static int
names_from(PyObject *set, Names *names)
{
    PyObject *iterator = PyObject_GetIter(set);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t size;
        const char *utf8 = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &size) : NULL;
        if (utf8 == NULL) {
            PyErr_Clear();
        }
        else if (strlen(utf8) != (size_t)size) {
            /* a NUL inside: no listed name holds one */
        }
        else if (text_add(&names->text, utf8, (size_t)size + 1) < 0) {
            Py_DECREF(item);
            Py_DECREF(iterator);
            PyErr_NoMemory();
            return -1;
        }
        else {
            names->count++;
        }
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

/* Whether names holds the bytes head + tail. */
static int
names_hold(const Names *names, const char *head, size_t head_size, const char *tail,
           size_t tail_size)
{
    const char *item = names->text.data;
    for (size_t index = 0; index < names->count; index++) {
        size_t size = strlen(item);
        if (size == head_size + tail_size && memcmp(item, head, head_size) == 0
            && memcmp(item + head_size, tail, tail_size) == 0) {
            return 1;
        }
        item += size + 1;
    }
    return 0;
}

typedef struct {
    PyObject *entries;  /* a listing from children(), or NULL: the native one below */
    Listing listing;    /* keys (name, a slash after a folder), NUL-terminated */
    const char **keys;  /* sorted */
    Py_ssize_t count, next;
    Text path;   /* the folder's path, ending with a slash (native listings only) */
    Text prefix; /* its member prefix ("" or ending with a slash) */
} Batching1;

struct Batching {
    Batching1 *levels;
    Py_ssize_t depth, capacity;
    Names excluded;           /* relative paths left out */
    Names excluded_dir_names; /* folder names left out */
};

static void
level_free(Batching1 *level)
{
    Py_XDECREF(level->entries);
    PyMem_RawFree(level->listing.names.data);
    PyMem_RawFree(level->listing.types.data);
    PyMem_RawFree((void *)level->keys);
    PyMem_RawFree(level->path.data);
    PyMem_RawFree(level->prefix.data);
}

static void
batching_free(struct Batching *batching)
{
    if (batching == NULL) {
        return;
    }
    while (batching->depth > 0) {
        level_free(&batching->levels[--batching->depth]);
    }
    PyMem_Free(batching->levels);
    PyMem_RawFree(batching->excluded.text.data);
    PyMem_RawFree(batching->excluded_dir_names.text.data);
    PyMem_Free(batching);
}

static Batching1 *
batching_push(struct Batching *batching)
{
    if (batching->depth == batching->capacity) {
        Py_ssize_t capacity = batching->capacity ? batching->capacity * 2 : 16;
        Batching1 *grown = PyMem_Realloc(batching->levels, (size_t)capacity * sizeof(Batching1));
        if (grown == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        batching->levels = grown;
        batching->capacity = capacity;
    }
    Batching1 *level = &batching->levels[batching->depth++];
    memset(level, 0, sizeof(*level));
    return level;
}

static int
is_ascii(const char *name, size_t size)
{
    for (size_t index = 0; index < size; index++) {
        if ((unsigned char)name[index] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* The level's keys from its listing, sorted; 1 done, 0 the Python listing must answer (a
 * name that is not UTF-8), -1 on an error. */
static int
level_keys(struct Batching *batching, Batching1 *level)
{
    Listing *listing = &level->listing;
    Text keys = {NULL, 0, 0};
    const char *name = listing->names.data;
    size_t kept = 0;
    int result = 1;
    for (size_t index = 0; index < listing->count; index++) {
        size_t size = strlen(name);
        int is_dir = (unsigned char)listing->types.data[index] == DT_DIR;
        if (!is_ascii(name, size)) {
            PyObject *text = PyUnicode_DecodeUTF8(name, (Py_ssize_t)size, "strict");
            if (text == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    result = -1;
                    break;
                }
                PyErr_Clear(); /* not UTF-8: the Python walk refuses it by name */
                result = 0;
                break;
            }
            Py_DECREF(text);
        }
        const char *prefix = level->prefix.data ? level->prefix.data : "";
        int skip = names_hold(&batching->excluded, prefix, level->prefix.size, name, size)
                   || (is_dir && names_hold(&batching->excluded_dir_names, "", 0, name, size));
        if (!skip) {
            if (text_add(&keys, name, size) < 0 || (is_dir && text_add(&keys, "/", 1) < 0)
                || text_add(&keys, "", 1) < 0) {
                PyErr_NoMemory();
                result = -1;
                break;
            }
            kept++;
        }
        name += size + 1;
    }
    PyMem_RawFree(listing->names.data);
    PyMem_RawFree(listing->types.data);
    listing->names = keys; /* the keys take the names' place */
    listing->types = (Text){NULL, 0, 0};
    listing->count = kept;
    if (result != 1) {
        return result;
    }
    level->keys = PyMem_RawMalloc((kept + 1) * sizeof(char *));
    if (level->keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const char *key = keys.data;
    for (size_t index = 0; index < kept; index++) {
        level->keys[index] = key;
        key += strlen(key) + 1;
    }
    qsort((void *)level->keys, kept, sizeof(char *), compare_names);
    level->count = (Py_ssize_t)kept;
    return 1;
}

/* Push the listing of the folder at path (ending with a slash) whose member prefix is
 * prefix: natively when it is plain, else children(folder). folder: its walk.Entry, None
 * for the root, or NULL (made from path and prefix when children needs it). */
static int
fill_push(Walking *self, const char *path, size_t path_size, const char *prefix,
          size_t prefix_size, PyObject *folder)
{
    Walk *walk = &self->state;
    Batching1 *level = batching_push(self->batching);
    if (level == NULL) {
        return -1;
    }
    if (text_add(&level->path, path, path_size) < 0 || text_add(&level->path, "", 1) < 0
        || text_add(&level->prefix, prefix, prefix_size) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    level->path.size = path_size; /* the NUL stays behind the end */
    int native = 1;
    if (PySet_GET_SIZE(walk->by_children) != 0) {
        PyObject *key = PyUnicode_DecodeUTF8(prefix_size ? prefix : "", (Py_ssize_t)prefix_size,
                                             "strict");
        int python = key == NULL ? -1 : PySet_Contains(walk->by_children, key);
        Py_XDECREF(key);
        if (python < 0) {
            return -1;
        }
        native = !python;
    }
    if (native) {
        int complete = read_folder(level->path.data, &level->listing);
        if (complete < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (complete == 1) {
            complete = level_keys(self->batching, level);
            if (complete != 0) {
                return complete < 0 ? -1 : 0;
            }
        }
    }
    /* The Python listing: its rules and messages for what is out of the ordinary. */
    PyObject *entry;
    if (folder != NULL) {
        entry = Py_NewRef(folder);
    }
    else {
        entry = make_entry(walk->new_entry, prefix, prefix_size, 1, path, path_size - 1);
        if (entry == NULL) {
            return -1;
        }
    }
    PyObject *found = call_children(walk, entry);
    Py_DECREF(entry);
    if (found == NULL) {
        return -1;
    }
    level = &self->batching->levels[self->batching->depth - 1];
    level->entries = found;
    level->count = PyList_GET_SIZE(found);
    return 0;
}

/* Push a folder that is a walk.Entry (borrowed): natively when its names encode. */
static int
fill_push_entry(Walking *self, PyObject *folder)
{
    PyObject *source = folder == Py_None ? self->state.root : PyTuple_GET_ITEM(folder, 3);
    Py_ssize_t prefix_size = 0;
    const char *prefix = "";
    if (folder != Py_None) {
        PyObject *path = PyTuple_GET_ITEM(folder, 0);
        prefix = PyUnicode_Check(path) ? PyUnicode_AsUTF8AndSize(path, &prefix_size) : NULL;
    }
    PyObject *encoded = PyUnicode_Check(source) ? PyUnicode_EncodeFSDefault(source) : NULL;
    if (prefix == NULL || encoded == NULL) {
        Py_XDECREF(encoded);
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "walk needs entries with str paths and sources");
        return -1;
    }
    Text path = {NULL, 0, 0}, member = {NULL, 0, 0};
    size_t size = (size_t)PyBytes_GET_SIZE(encoded);
    const char *bytes = PyBytes_AS_STRING(encoded);
    int failed = text_add(&path, bytes, size) < 0
                 || ((size == 0 || bytes[size - 1] != '/') && text_add(&path, "/", 1) < 0)
                 || text_add(&member, prefix, (size_t)prefix_size) < 0
                 || (folder != Py_None && text_add(&member, "/", 1) < 0);
    int result = -1;
    if (failed) {
        PyErr_NoMemory();
    }
    else if (strlen(bytes) != size) {
        PyErr_SetString(PyExc_ValueError, "a folder's path holds a NUL");
    }
    else {
        result = fill_push(self, path.data, path.size, member.data ? member.data : "",
                           member.size, folder);
    }
    Py_DECREF(encoded);
    PyMem_RawFree(path.data);
    PyMem_RawFree(member.data);
    return result;
}

PyDoc_STRVAR(fill_doc,
"fill(batch, size) -> bool\n\n"
"Append the walk's next entries to batch until it holds size entries: True when it does\n"
"(the walk may go on), False when the walk is over. The entries the walk lists natively go\n"
"in as names, not as walk.Entry tuples. A walk is either filled or iterated.");

static PyObject *
walking_fill(Walking *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &BatchType)) {
        PyErr_SetString(PyExc_TypeError, "fill takes a Batch and a size");
        return NULL;
    }
    Batch *batch = (Batch *)args[0];
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 1) {  /* an empty batch would read as "more to come", forever */
        PyErr_SetString(PyExc_ValueError, "fill takes a size of at least 1");
        return NULL;
    }
    if (self->mode == WALK_NEXT) {
        PyErr_SetString(PyExc_TypeError, "an iterated walk does not fill batches");
        return NULL;
    }
    self->mode = WALK_FILL;
    if (self->batching == NULL) {
        self->batching = PyMem_Calloc(1, sizeof(struct Batching));
        if (self->batching == NULL) {
            return PyErr_NoMemory();
        }
        if (names_from(self->state.excluded, &self->batching->excluded) < 0
            || names_from(self->state.excluded_dir_names, &self->batching->excluded_dir_names)
                   < 0) {
            goto failed;
        }
    }
    struct Batching *batching = self->batching;
    if (self->folder != NULL) {
        PyObject *folder = self->folder;
        self->folder = NULL;
        int failed = fill_push_entry(self, folder);
        Py_DECREF(folder);
        if (failed) {
            goto failed;
        }
    }
    while (batching->depth > 0) {
        if (batch->count >= size) {
            Py_RETURN_TRUE;
        }
        Batching1 *level = &batching->levels[batching->depth - 1];
        if (level->next >= level->count) {
            level_free(level);
            batching->depth--;
            continue;
        }
        Py_ssize_t next = level->next++;
        if (level->entries != NULL) {
            PyObject *entry = PyList_GET_ITEM(level->entries, next);
            int inside = is_folder(entry);
            if (inside < 0 || batch_add_python(batch, entry) < 0) {
                goto failed;
            }
            /* The entry is held by the batch while the listing below runs Python code. */
            if (inside && fill_push_entry(self, entry) < 0) {
                goto failed;
            }
            continue;
        }
        const char *key = level->keys[next];
        size_t key_size = strlen(key);
        if (batch_add_native(batch, level->prefix.data ? level->prefix.data : "",
                             level->prefix.size, key, key_size, level->path.data,
                             level->path.size) < 0) {
            goto failed;
        }
        if (key[key_size - 1] == '/') {
            /* The child's path and prefix: the batch's copy (it only grows at its end). */
            Slot *slot = &batch->slots[batch->count - 1];
            Text child = {NULL, 0, 0};
            const char *text = batch->text.data;
            int failed = text_add(&child, text + slot->source, slot->source_size) < 0
                         || text_add(&child, "/", 1) < 0;
            if (failed) {
                PyErr_NoMemory();
                goto failed;
            }
            failed = fill_push(self, child.data, child.size, text + slot->raw, slot->raw_size,
                               NULL);
            PyMem_RawFree(child.data);
            if (failed) {
                goto failed;
            }
        }
    }
    Py_RETURN_FALSE;
failed:
    batching_free(self->batching);
    self->batching = NULL;
    return NULL;
}

static PyMethodDef walking_methods[] = {
    {"fill", (PyCFunction)(void (*)(void))walking_fill, METH_FASTCALL, fill_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WalkingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aether.pack._scanfolder.Walking",
    .tp_doc = "The entries of a walk, in archive order, each folder listed when reached.",
    .tp_basicsize = sizeof(Walking),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)walking_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)walking_next,
    .tp_methods = walking_methods,
};

static PyObject *
walk(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "walk takes 7 arguments");
        return NULL;
    }
    PyObject *folder = args[1];
    if (check_sets(args[0], args[2], args[3]) < 0 || !PyAnySet_Check(args[6])) {
        return NULL;
    }
    if (folder != Py_None && is_folder(folder) != 1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "walk needs a folder entry or None");
        }
        return NULL;
    }
    Walking *self = PyObject_New(Walking, &WalkingType);
    if (self == NULL) {
        return NULL;
    }
    self->state = (Walk){Py_NewRef(args[0]), Py_NewRef(args[2]), Py_NewRef(args[3]),
                         Py_NewRef(args[4]), Py_NewRef(args[5]), Py_NewRef(args[6])};
    self->folder = Py_NewRef(folder);
    self->levels = NULL;
    self->depth = 0;
    self->capacity = 0;
    self->batching = NULL;
    self->mode = WALK_UNUSED;
    return (PyObject *)self;
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
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL, walk_doc},
    {"stamp", (PyCFunction)(void (*)(void))stamp, METH_FASTCALL, stamp_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    if (PyType_Ready(&WalkingType) < 0 || PyType_Ready(&BatchType) < 0
        || PyModule_AddObjectRef(module, "Batch", (PyObject *)&BatchType) < 0) {
        return -1;
    }
    PyObject *api = PyCapsule_New(&entries_api, ENTRIES_CAPSULE, NULL);
    int added = api == NULL ? -1 : PyModule_AddObjectRef(module, "_entries_api", api);
    Py_XDECREF(api);
    if (added < 0) {
        return -1;
    }
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
    .m_doc = "Folder listings natively: the walk (walk.py), its batches and tree stamps (treestamp.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__scanfolder(void)
{
    return PyModuleDef_Init(&module_def);
}
