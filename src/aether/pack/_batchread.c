/* The native twin of aether/pack/batchread.py: a batch of walk entries -> tar members.
 *
 * Per member a pack does a few system calls (open, fstat, read, close) between bits of
 * Python; here the whole batch runs in one call, in three steps: with the GIL, the entries'
 * names are taken from their Python objects; without it, every file is opened, read straight
 * into the output buffer behind its header, hashed with BLAKE3 (the official C implementation,
 * vendor/blake3) and closed, so reader threads run in parallel (aether/pack/threaded.py); with
 * the GIL again, each file is recorded, and the buffer goes to Python as it is (a read-only
 * memoryview, no copy; its memory is kept for a later batch once the compressor has released
 * it). It must write exactly what read_batch_python writes:
 * anything out of the ordinary (a file that cannot be read, changed type or shrank, a name
 * that is not valid UTF-8) stops the batch there, and the Python reader takes over from that
 * entry, so errors are named in one place only.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "_entries.h"
#include "vendor/blake3/blake3.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#define BLOCK 512
#define NAME_FIELD 100
#define FILE_MODE 0644
#define EXEC_MODE 0755
#define DIR_MODE 0755
#define MTIME_FIELD 12
/* The blob starts at this size and doubles as needed; a batch is usually a few hundred KB. */
#define FIRST_CAPACITY (512 * 1024)
/* A blob kept for a later call is at most this big (a batch is a few MB). */
#define SPARE_MAX (16 * 1024 * 1024)

/* What a call ends with; batchread.py holds the same numbers. */
enum { DONE = 0, LARGE = 1, CAREFUL = 2 };

/* Entry fields, in walk.Entry's order. */
enum { ENTRY_PATH = 0, ENTRY_RAW = 1, ENTRY_KIND = 2, ENTRY_SOURCE = 3, ENTRY_TARGET = 4 };

static const char ZERO8[8] = {'0', '0', '0', '0', '0', '0', '0', '\0'};
static const char MAGIC[8] = {'u', 's', 't', 'a', 'r', '\0', '0', '0'};
static const char PAX_NAME[] = "././@PaxHeader";

typedef struct {
    char *data; /* the members being built (malloc'd: grown without the GIL) */
    Py_ssize_t size;
    Py_ssize_t capacity;
} Blob;

/* Blobs' memory is kept from one call to the next (a few, taken and given back while the
 * GIL is held, until drop_spares): the pages of a fresh buffer would be faulted in and zeroed
 * again for every batch. As many as are read ahead and queued for the compressor. */
#define SPARES 16
static Blob spares[SPARES];
static int spare_count = 0;

static void
take_spare(Blob *blob)
{
    if (spare_count > 0) {
        *blob = spares[--spare_count];
        blob->size = 0;
        return;
    }
    blob->data = malloc(FIRST_CAPACITY);
    blob->size = 0;
    blob->capacity = blob->data == NULL ? 0 : FIRST_CAPACITY;
}

static void
keep_spare(Blob *blob)
{
    if (blob->data == NULL || blob->capacity > SPARE_MAX || spare_count == SPARES) {
        free(blob->data);
        return;
    }
    spares[spare_count++] = *blob;
}

PyDoc_STRVAR(drop_spares_doc, "drop_spares()\n\nFree the memory kept for the next batches.");

static PyObject *
drop_spares(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    while (spare_count > 0) {
        free(spares[--spare_count].data);
    }
    Py_RETURN_NONE;
}

/* A finished blob handed to Python without a copy: a read-only buffer whose memory goes back
 * to the spares when the last view of it is released (the compressor is done with it). */
typedef struct {
    PyObject_HEAD
    Blob blob;
} Members;

static int
members_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    Blob *blob = &((Members *)self)->blob;
    return PyBuffer_FillInfo(view, self, blob->data, blob->size, 1, flags);
}

static void
members_dealloc(PyObject *self)
{
    keep_spare(&((Members *)self)->blob);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs members_as_buffer = {.bf_getbuffer = members_getbuffer};

static PyTypeObject MembersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aether.pack._batchread.Members",
    .tp_doc = "A batch's tar members, read-only; read_batch hands out a memoryview of it.",
    .tp_basicsize = sizeof(Members),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = members_dealloc,
    .tp_as_buffer = &members_as_buffer,
};

/* A memoryview of `blob`, which it takes over (freed on failure). */
static PyObject *
members_view(Blob *blob)
{
    Members *members = PyObject_New(Members, &MembersType);
    if (members == NULL) {
        keep_spare(blob);
        return NULL;
    }
    members->blob = *blob;
    PyObject *view = PyMemoryView_FromObject((PyObject *)members);
    Py_DECREF(members);
    return view;
}

/* Room for `more` bytes; -1 when out of memory. Needs no GIL. */
static int
blob_reserve(Blob *blob, Py_ssize_t more)
{
    Py_ssize_t need = blob->size + more;
    if (need <= blob->capacity) {
        return 0;
    }
    Py_ssize_t capacity = blob->capacity * 2;
    if (capacity < need) {
        capacity = need;
    }
    char *data = realloc(blob->data, (size_t)capacity);
    if (data == NULL) {
        return -1;
    }
    blob->data = data;
    blob->capacity = capacity;
    return 0;
}

static inline char *
blob_end(Blob *blob)
{
    return blob->data + blob->size;
}

/* "%0*o\0" into a field of `width` bytes (width - 1 octal digits, then NUL). */
static void
put_octal(char *field, int width, unsigned long long value)
{
    field[width - 1] = '\0';
    for (int index = width - 2; index >= 0; index--) {
        field[index] = (char)('0' + (value & 7));
        value >>= 3;
    }
}

/* The sum of a header's bytes, as its checksum counts them: eight at a time (two bytes per
 * 16-bit lane; the 44 words add at most 22,440 to a lane), over the fields up to the device
 * numbers (HEADER_USED bytes): the rest of the block is zeros. Once per member: the byte
 * loop was 7 % of a pack's instructions. */
#define HEADER_USED 352
static unsigned long
header_sum(const char *block)
{
    const uint64_t low = 0x00FF00FF00FF00FFULL;
    uint64_t lanes = 0;
    for (int offset = 0; offset < HEADER_USED; offset += 8) {
        uint64_t word;
        memcpy(&word, block + offset, 8);
        lanes += (word & low) + ((word >> 8) & low);
    }
    return (unsigned long)((lanes & 0xFFFF) + ((lanes >> 16) & 0xFFFF)
                           + ((lanes >> 32) & 0xFFFF) + (lanes >> 48));
}

/* One ustar header block; name and link are at most NAME_FIELD bytes here. */
static void
ustar_header(char *block, const char *name, Py_ssize_t name_size, int mode,
             unsigned long long size, char typeflag, const char *link, Py_ssize_t link_size,
             const char *mtime)
{
    memset(block, 0, BLOCK);
    memcpy(block, name, (size_t)name_size);
    put_octal(block + 100, 8, (unsigned long long)mode);
    memcpy(block + 108, ZERO8, 8);
    memcpy(block + 116, ZERO8, 8);
    put_octal(block + 124, 12, size);
    memcpy(block + 136, mtime, MTIME_FIELD);
    memset(block + 148, ' ', 8);
    block[156] = typeflag;
    memcpy(block + 157, link, (size_t)link_size);
    memcpy(block + 257, MAGIC, 8);
    memcpy(block + 329, ZERO8, 8);
    memcpy(block + 337, ZERO8, 8);
    put_octal(block + 148, 7, header_sum(block));
    block[155] = ' ';
}

static Py_ssize_t
decimal_digits(Py_ssize_t value)
{
    Py_ssize_t digits = 1;
    while (value >= 10) {
        value /= 10;
        digits++;
    }
    return digits;
}

/* A pax record "<length> <key>=<value>\n"; the length counts itself. */
static Py_ssize_t
pax_record_size(Py_ssize_t key_size, Py_ssize_t value_size)
{
    Py_ssize_t body = key_size + value_size + 3;
    Py_ssize_t length = body + 1;
    while (decimal_digits(length) + body != length) {
        length = decimal_digits(length) + body;
    }
    return length;
}

static char *
put_pax_record(char *out, const char *key, const char *value, Py_ssize_t value_size)
{
    Py_ssize_t key_size = (Py_ssize_t)strlen(key);
    Py_ssize_t length = pax_record_size(key_size, value_size);
    out += sprintf(out, "%zd %s=", length, key);
    memcpy(out, value, (size_t)value_size);
    out += value_size;
    *out++ = '\n';
    return out;
}

static Py_ssize_t
padding(Py_ssize_t size)
{
    return (BLOCK - size % BLOCK) % BLOCK;
}

/* The header block(s) of one member, as tarcodec.entry_header writes them: a pax block first
 * when the name or the link target is longer than its field. Needs no GIL. */
static int
put_header(Blob *blob, const char *name, Py_ssize_t name_size, int mode,
           unsigned long long size, char typeflag, const char *link, Py_ssize_t link_size,
           const char *mtime)
{
    Py_ssize_t records = 0;
    if (name_size > NAME_FIELD) {
        records += pax_record_size(4, name_size);
    }
    if (link_size > NAME_FIELD) {
        records += pax_record_size(8, link_size);
    }
    if (records) {
        if (blob_reserve(blob, 3 * BLOCK + records) < 0) {
            return -1;
        }
        char *out = blob_end(blob);
        ustar_header(out, PAX_NAME, (Py_ssize_t)strlen(PAX_NAME), FILE_MODE,
                     (unsigned long long)records, 'x', "", 0, mtime);
        char *data = out + BLOCK;
        if (name_size > NAME_FIELD) {
            data = put_pax_record(data, "path", name, name_size);
            name_size = NAME_FIELD;
        }
        if (link_size > NAME_FIELD) {
            data = put_pax_record(data, "linkpath", link, link_size);
            link_size = NAME_FIELD;
        }
        Py_ssize_t pad = padding(records);
        memset(data, 0, (size_t)pad);
        blob->size += BLOCK + records + pad;
    }
    else if (blob_reserve(blob, BLOCK) < 0) {
        return -1;
    }
    ustar_header(blob_end(blob), name, name_size, mode, size, typeflag, link, link_size, mtime);
    blob->size += BLOCK;
    return 0;
}

/* The BLAKE3 digest of `size` bytes (no GIL needed). */
static void
blake3_of(const char *data, Py_ssize_t size, uint8_t digest[BLAKE3_OUT_LEN])
{
    blake3_hasher hasher;
    blake3_hasher_init(&hasher);
    blake3_hasher_update(&hasher, data, (size_t)size);
    blake3_hasher_finalize(&hasher, digest, BLAKE3_OUT_LEN);
}

/* Each byte's two lowercase hex digits. */
static const char HEX_PAIRS[256][3] = {
    "00", "01", "02", "03", "04", "05", "06", "07",
    "08", "09", "0a", "0b", "0c", "0d", "0e", "0f",
    "10", "11", "12", "13", "14", "15", "16", "17",
    "18", "19", "1a", "1b", "1c", "1d", "1e", "1f",
    "20", "21", "22", "23", "24", "25", "26", "27",
    "28", "29", "2a", "2b", "2c", "2d", "2e", "2f",
    "30", "31", "32", "33", "34", "35", "36", "37",
    "38", "39", "3a", "3b", "3c", "3d", "3e", "3f",
    "40", "41", "42", "43", "44", "45", "46", "47",
    "48", "49", "4a", "4b", "4c", "4d", "4e", "4f",
    "50", "51", "52", "53", "54", "55", "56", "57",
    "58", "59", "5a", "5b", "5c", "5d", "5e", "5f",
    "60", "61", "62", "63", "64", "65", "66", "67",
    "68", "69", "6a", "6b", "6c", "6d", "6e", "6f",
    "70", "71", "72", "73", "74", "75", "76", "77",
    "78", "79", "7a", "7b", "7c", "7d", "7e", "7f",
    "80", "81", "82", "83", "84", "85", "86", "87",
    "88", "89", "8a", "8b", "8c", "8d", "8e", "8f",
    "90", "91", "92", "93", "94", "95", "96", "97",
    "98", "99", "9a", "9b", "9c", "9d", "9e", "9f",
    "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7",
    "a8", "a9", "aa", "ab", "ac", "ad", "ae", "af",
    "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7",
    "b8", "b9", "ba", "bb", "bc", "bd", "be", "bf",
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
    "c8", "c9", "ca", "cb", "cc", "cd", "ce", "cf",
    "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
    "d8", "d9", "da", "db", "dc", "dd", "de", "df",
    "e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7",
    "e8", "e9", "ea", "eb", "ec", "ed", "ee", "ef",
    "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7",
    "f8", "f9", "fa", "fb", "fc", "fd", "fe", "ff"
};

/* A digest as lowercase hex, what the blake3 package's hexdigest() gives. */
static PyObject *
hex_digest(const uint8_t digest[BLAKE3_OUT_LEN])
{
    PyObject *hex = PyUnicode_New(2 * BLAKE3_OUT_LEN, 127);
    if (hex != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(hex);
        for (int index = 0; index < BLAKE3_OUT_LEN; index++) {
            memcpy(out + 2 * index, HEX_PAIRS[digest[index]], 2); /* once per file: a table */
        }
    }
    return hex;
}

/* Outcome of writing one member into the blob. */
enum { READ_OK = 0, READ_LARGE = 1, READ_ODD = 2, READ_FAILED = -1 };

/* _scanfolder's batches, when that extension is there (_entries.h). */
static EntriesApi *entries_api = NULL;

enum { KIND_FILE = 0, KIND_DIR = 1, KIND_LINK = 2 };

/* One entry of the batch: what the members need, taken from the Python objects while the GIL
 * is held, then filled in without it. */
typedef struct {
    int kind;
    PyObject *entry; /* borrowed from the entries list; NULL for a batch's native entry */
    const char *raw; /* the member name (the entry's raw bytes) */
    Py_ssize_t raw_size;
    const char *source; /* the file's name in the file system encoding, NUL-terminated */
    PyObject *path; /* owned: that name, when it had to be encoded (not plain ASCII) */
    PyObject *text; /* owned: a symlink's target as the manifest lists it */
    PyObject *link; /* owned: the same, as the bytes the header holds */
    Py_ssize_t size;
    int mode;
    uint8_t digest[BLAKE3_OUT_LEN]; /* a file's BLAKE3, taken without the GIL */
} Item;

/* Reads `count` bytes from `fd` into `out`; 0 when they all came, -1 otherwise (the
 * Python reader will tell the user why). */
static int
read_exactly(int fd, char *out, Py_ssize_t count)
{
    while (count > 0) {
        ssize_t got = read(fd, out, (size_t)count);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return -1;
        }
        out += got;
        count -= got;
    }
    return 0;
}

/* The Item for one entry (GIL held); READ_ODD for anything the Python reader must handle. */
static int
prepare_item(PyObject *entry, Item *item)
{
    memset(item, 0, sizeof(*item));
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 5) {
        return READ_ODD;
    }
    item->entry = entry;
    PyObject *raw = PyTuple_GET_ITEM(entry, ENTRY_RAW);
    PyObject *kind = PyTuple_GET_ITEM(entry, ENTRY_KIND);
    if (!PyBytes_Check(raw)) {
        return READ_ODD;
    }
    item->raw = PyBytes_AS_STRING(raw);
    item->raw_size = PyBytes_GET_SIZE(raw);
    if (PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, "file") == 0) {
        PyObject *source = PyTuple_GET_ITEM(entry, ENTRY_SOURCE);
        if (!PyUnicode_Check(source)) {
            return READ_ODD;
        }
        item->kind = KIND_FILE;
        Py_ssize_t size;
        if (PyUnicode_IS_COMPACT_ASCII(source)) {
            /* The same bytes in any file system encoding: the str's own, no copy (the
             * entries list holds the str until the call returns). */
            item->source = (const char *)PyUnicode_DATA(source);
            size = PyUnicode_GET_LENGTH(source);
        }
        else {
            item->path = PyUnicode_EncodeFSDefault(source);
            if (item->path == NULL) {
                PyErr_Clear();
                return READ_ODD;
            }
            item->source = PyBytes_AS_STRING(item->path);
            size = PyBytes_GET_SIZE(item->path);
        }
        /* A NUL inside the name would open another file: the Python reader refuses it. */
        return strlen(item->source) == (size_t)size ? READ_OK : READ_ODD;
    }
    if (PyUnicode_Check(kind) && PyUnicode_CompareWithASCIIString(kind, "dir") == 0) {
        item->kind = KIND_DIR;
        return READ_OK;
    }
    PyObject *target = PyTuple_GET_ITEM(entry, ENTRY_TARGET);
    if (!(target == Py_None || PyUnicode_Check(target))) {
        return READ_ODD;
    }
    item->kind = KIND_LINK;
    item->text = target == Py_None ? PyUnicode_FromStringAndSize("", 0) : Py_NewRef(target);
    if (item->text == NULL) {
        return READ_FAILED;
    }
    item->link = PyUnicode_AsEncodedString(item->text, "utf-8", "surrogateescape");
    if (item->link == NULL) {
        PyErr_Clear();
        return READ_ODD;
    }
    return READ_OK;
}

/* An item from a _scanfolder.Batch's entry: a native one needs no Python object. */
static int
prepare_slot(PyObject *batch, Py_ssize_t index, Item *item)
{
    EntrySlot slot;
    entries_api->slot(batch, index, &slot);
    if (slot.kind == SLOT_PYTHON) {
        return prepare_item(slot.entry, item);
    }
    memset(item, 0, sizeof(*item));
    item->kind = slot.kind == SLOT_DIR ? KIND_DIR : KIND_FILE;
    item->raw = slot.raw;
    item->raw_size = slot.raw_size;
    item->source = slot.source;
    return READ_OK;
}

static void
release_items(Item *items, Py_ssize_t count)
{
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_XDECREF(items[index].path);
        Py_XDECREF(items[index].text);
        Py_XDECREF(items[index].link);
    }
}

/* Header, data and padding of one regular file, appended to the blob (no GIL). */
static int
put_file(Blob *blob, Item *item, const char *mtime, Py_ssize_t inline_max)
{
    struct stat st;
    /* O_NONBLOCK: a FIFO swapped in for the file must not hang the open. */
    int fd = open(item->source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return READ_ODD;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return READ_ODD;
    }
    Py_ssize_t size = (Py_ssize_t)st.st_size;
    if (size > inline_max) {
        close(fd);
        return READ_LARGE;
    }
    int mode = (st.st_mode & 0111) ? EXEC_MODE : FILE_MODE;
    Py_ssize_t pad = padding(size);
    /* Reserve the data's room first: put_header may not move the blob after it. */
    Py_ssize_t member_start = blob->size;
    if (blob_reserve(blob, size + pad + 3 * BLOCK + 2 * item->raw_size + 64) < 0
        || put_header(blob, item->raw, item->raw_size, mode, (unsigned long long)size, '0', "",
                      0, mtime) < 0) {
        close(fd);
        return READ_FAILED;
    }
    char *data = blob_end(blob);
    int failed = read_exactly(fd, data, size);
    close(fd);
    if (failed) {
        /* Take the header back: the Python reader writes this member again from scratch. */
        blob->size = member_start;
        return READ_ODD;
    }
    memset(data + size, 0, (size_t)pad);
    blake3_of(data, size, item->digest);
    item->size = size;
    item->mode = mode;
    blob->size += size + pad;
    return READ_OK;
}

static int
put_item(Blob *blob, Item *item, const char *mtime, Py_ssize_t inline_max)
{
    if (item->kind == KIND_FILE) {
        return put_file(blob, item, mtime, inline_max);
    }
    if (item->kind == KIND_DIR) {
        return put_header(blob, item->raw, item->raw_size, DIR_MODE, 0, '5', "", 0, mtime) < 0
                   ? READ_FAILED
                   : READ_OK;
    }
    return put_header(blob, item->raw, item->raw_size, FILE_MODE, 0, '2',
                      PyBytes_AS_STRING(item->link), PyBytes_GET_SIZE(item->link), mtime) < 0
               ? READ_FAILED
               : READ_OK;
}

static int
add_path_record(Item *item, PyObject *path, PyObject *files, PyObject *directories,
                PyObject *symlinks, PyObject *new_record, PyTypeObject **record_type)
{
    if (item->kind == KIND_DIR) {
        return PyList_Append(directories, path);
    }
    if (item->kind == KIND_LINK) {
        PyObject *pair = PyTuple_Pack(2, path, item->text);
        if (pair == NULL) {
            return -1;
        }
        int failed = PyList_Append(symlinks, pair);
        Py_DECREF(pair);
        return failed;
    }
    PyObject *hex = hex_digest(item->digest);
    if (hex == NULL) {
        return -1;
    }
    PyObject *record;
    if (*record_type != NULL) {
        /* What tuple.__new__(FileRecord, values) makes, without the values' own tuple. */
        PyObject *size = PyLong_FromSsize_t(item->size);
        PyObject *mode = size == NULL ? NULL : PyLong_FromLong(item->mode);
        record = mode == NULL ? NULL : (*record_type)->tp_alloc(*record_type, 4);
        if (record == NULL) {
            Py_XDECREF(size);
            Py_XDECREF(mode);
            Py_DECREF(hex);
            return -1;
        }
        PyTuple_SET_ITEM(record, 0, Py_NewRef(path));
        PyTuple_SET_ITEM(record, 1, size);
        PyTuple_SET_ITEM(record, 2, mode);
        PyTuple_SET_ITEM(record, 3, hex);
    }
    else {
        PyObject *values = Py_BuildValue("(OniN)", path, item->size, item->mode, hex);
        if (values == NULL) {
            return -1;
        }
        record = PyObject_CallOneArg(new_record, values);
        Py_DECREF(values);
        if (record == NULL) {
            return -1;
        }
        /* A plain tuple subclass (a named tuple) is allocated directly from now on. */
        PyTypeObject *type = Py_TYPE(record);
        if (PyTuple_Check(record) && PyTuple_GET_SIZE(record) == 4 && type != &PyTuple_Type
            && type->tp_alloc != NULL && type->tp_dictoffset == 0) {
            *record_type = type;
        }
    }
    int failed = PyList_Append(files, record);
    Py_DECREF(record);
    return failed;
}

/* The manifest's record of one written member (GIL held). */
static int
add_record(Item *item, PyObject *files, PyObject *directories, PyObject *symlinks,
           PyObject *new_record, PyTypeObject **record_type)
{
    PyObject *path;
    if (item->entry != NULL) {
        path = Py_NewRef(PyTuple_GET_ITEM(item->entry, ENTRY_PATH));
    }
    else { /* a batch's native entry: its member name (UTF-8, checked by the walk) */
        Py_ssize_t size = item->raw_size - (item->kind == KIND_DIR);
        path = PyUnicode_DecodeUTF8(item->raw, size, "strict");
        if (path == NULL) {
            return -1;
        }
    }
    int failed = add_path_record(item, path, files, directories, symlinks, new_record,
                                 record_type);
    Py_DECREF(path);
    return failed;
}

PyDoc_STRVAR(read_batch_doc,
"read_batch(entries, start, mtime, budget, inline_max, files, directories, symlinks,\n"
"           new_record) -> (blob, next, status)\n\n"
"The members of entries[start:] as tar bytes, as batchread.read_batch_python writes them,\n"
"in a read-only memoryview of the buffer they were read into (no copy). The files are\n"
"opened, read, hashed and framed without the GIL.");

static PyObject *
read_batch(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "read_batch takes 9 arguments");
        return NULL;
    }
    PyObject *entries = args[0];
    Py_ssize_t index = PyLong_AsSsize_t(args[1]);
    PyObject *mtime_field = args[2];
    Py_ssize_t budget = PyLong_AsSsize_t(args[3]);
    Py_ssize_t inline_max = PyLong_AsSsize_t(args[4]);
    PyObject *files = args[5], *directories = args[6], *symlinks = args[7];
    PyObject *new_record = args[8];
    if (PyErr_Occurred()) {
        return NULL;
    }
    int is_batch = entries_api != NULL && Py_IS_TYPE(entries, entries_api->batch_type);
    if (!(is_batch || PyList_Check(entries)) || !PyList_Check(files)
        || !PyList_Check(directories) || !PyList_Check(symlinks)) {
        PyErr_SetString(PyExc_TypeError, "read_batch needs lists");
        return NULL;
    }
    if (!PyBytes_Check(mtime_field) || PyBytes_GET_SIZE(mtime_field) != MTIME_FIELD) {
        PyErr_SetString(PyExc_ValueError, "mtime must be a 12-byte tar field");
        return NULL;
    }
    char mtime[MTIME_FIELD];
    memcpy(mtime, PyBytes_AS_STRING(mtime_field), MTIME_FIELD);
    Py_ssize_t end = is_batch ? PySequence_Size(entries) : PyList_GET_SIZE(entries);
    if (index < 0 || index > end) {
        PyErr_SetString(PyExc_IndexError, "start is outside the entries");
        return NULL;
    }
    /* 1. With the GIL: what each entry needs, up to the first one the Python reader must
     * handle. The list holds the entries (and so their names) until the call returns. */
    Item *items = PyMem_Calloc((size_t)(end - index) + 1, sizeof(Item));
    if (items == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t prepared = 0;
    int status = DONE;
    while (index + prepared < end) {
        int outcome = is_batch
                          ? prepare_slot(entries, index + prepared, &items[prepared])
                          : prepare_item(PyList_GET_ITEM(entries, index + prepared),
                                         &items[prepared]);
        if (outcome == READ_FAILED) {
            release_items(items, prepared + 1);
            PyMem_Free(items);
            return NULL;
        }
        if (outcome == READ_ODD) {
            release_items(&items[prepared], 1);
            status = CAREFUL;
            break;
        }
        prepared++;
    }
    /* 2. Without it: the members, into a blob of our own. */
    Blob blob;
    take_spare(&blob);
    Py_ssize_t written = 0;
    int failed = blob.data == NULL;
    Py_BEGIN_ALLOW_THREADS
    while (!failed && written < prepared) {
        int outcome = put_item(&blob, &items[written], mtime, inline_max);
        if (outcome == READ_FAILED) {
            failed = 1;
            break;
        }
        if (outcome != READ_OK) {
            status = outcome == READ_LARGE ? LARGE : CAREFUL;
            break;
        }
        written++;
        budget -= items[written - 1].size;
        if (budget <= 0) {
            status = DONE; /* whatever follows is for the next call */
            break;
        }
    }
    Py_END_ALLOW_THREADS
    /* 3. With the GIL again: the bytes, and each member's record. */
    PyObject *result = NULL;
    PyObject *members;
    if (failed) {
        keep_spare(&blob);
        members = PyErr_NoMemory();
    }
    else {
        members = members_view(&blob);
    }
    if (members != NULL) {
        Py_ssize_t done = 0;
        PyTypeObject *record_type = NULL;
        while (done < written
               && add_record(&items[done], files, directories, symlinks, new_record,
                             &record_type) == 0) {
            done++;
        }
        if (done == written) {
            result = Py_BuildValue("(Oni)", members, index + written, status);
        }
        Py_DECREF(members);
    }
    release_items(items, prepared);
    PyMem_Free(items);
    return result;
}

PyDoc_STRVAR(blake3_hex_doc,
"blake3_hex(data) -> str\n\n"
"The hex BLAKE3 digest of a bytes-like object, as read_batch records it (for tests).");

static PyObject *
blake3_hex(PyObject *Py_UNUSED(module), PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint8_t digest[BLAKE3_OUT_LEN];
    Py_BEGIN_ALLOW_THREADS
    blake3_of(view.buf, view.len, digest);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return hex_digest(digest);
}

static PyMethodDef methods[] = {
    {"read_batch", (PyCFunction)(void (*)(void))read_batch, METH_FASTCALL, read_batch_doc},
    {"blake3_hex", blake3_hex, METH_O, blake3_hex_doc},
    {"drop_spares", drop_spares, METH_NOARGS, drop_spares_doc},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    /* BLAKE3 picks its SIMD code on first use; once here, before any reader thread runs. */
    uint8_t digest[BLAKE3_OUT_LEN];
    blake3_of("", 0, digest);
    entries_api = PyCapsule_Import(ENTRIES_CAPSULE, 0);
    if (entries_api == NULL) {
        PyErr_Clear(); /* not built: read_batch takes lists of walk.Entry only */
    }
    if (PyType_Ready(&MembersType) < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "DONE", DONE) < 0
        || PyModule_AddIntConstant(module, "LARGE", LARGE) < 0
        || PyModule_AddIntConstant(module, "CAREFUL", CAREFUL) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aether.pack._batchread",
    .m_doc = "Batches of walk entries as tar members: the native twin of batchread.py.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__batchread(void)
{
    return PyModuleDef_Init(&module_def);
}
