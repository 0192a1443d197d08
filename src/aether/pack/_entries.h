/* A batch of walk entries kept in C (_scanfolder.Batch), as the reader (_batchread) sees it.
 *
 * The walk appends the entries it lists natively as names in one buffer, not as walk.Entry
 * tuples; entries it got from Python (the first of a piece, folders the Python listing
 * answered for) stay Python objects. _scanfolder publishes a capsule with the batch's type
 * and a function that describes one entry; _batchread imports it. A native entry becomes a
 * walk.Entry only when Python asks for it (batch[index]: the fallback paths).
 */

#ifndef PACK_ENTRIES_H_INCLUDED
#define PACK_ENTRIES_H_INCLUDED

#include <Python.h>

#define ENTRIES_CAPSULE "aether.pack._scanfolder._entries_api"

enum { SLOT_FILE = 0, SLOT_DIR = 1, SLOT_PYTHON = 2 };

typedef struct {
    int kind;           /* SLOT_FILE or SLOT_DIR (native), SLOT_PYTHON: see entry */
    PyObject *entry;    /* borrowed: the walk.Entry of a SLOT_PYTHON slot, else NULL */
    const char *raw;    /* native: the member name (UTF-8, a slash after a folder) */
    Py_ssize_t raw_size;
    const char *source; /* native: the path to open, NUL-terminated, no NUL inside */
} EntrySlot;

typedef struct {
    PyTypeObject *batch_type;
    /* The slot at index (0 <= index < len(batch)); valid while the batch is not appended to. */
    void (*slot)(PyObject *batch, Py_ssize_t index, EntrySlot *out);
} EntriesApi;

#endif
