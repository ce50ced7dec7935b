/*
 * _intake.c: the C extension under the `intake` package (bindings/python/intake/__init__.py is
 * the public face): libintake's consumer, consumer set and producer for CPython.
 *
 * Why a C extension and not cffi: a consumer turns every polled record into a Python object,
 * and at a million records a second that object must cost a few hundred nanoseconds. Here a
 * record is one allocation holding the parsed view's pointers; key and value become
 * memoryviews only when read (bench/python-consumer has the figures).
 *
 * Zero copy and lifetime. key, value and raw are read-only memoryviews straight into the log's
 * mapping. Every record and every memoryview holds a reference to the `_Log` that owns the
 * library handle, and the handle (with its mapping) is closed only when the last of them is
 * gone, so no view can outlive the memory it shows. What the bytes contain follows the library's
 * rule (include/intake/consumer.h): in block retention they are the record's until the next
 * poll (iteration: the next step) or close; after that, or any time in overwrite retention,
 * the writer may reuse them, and Record.valid() says whether they are still intact.
 *
 * Threads: every wait and every producer call that can block releases the GIL. A handle is
 * used by one thread at a time: a second thread calling into a busy one gets intake.Error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <intake/consumer.h>
#include <intake/producer.h>

/* A wait for "no timeout" sleeps in slices this long, checking for signals (Ctrl-C) between. */
#define WAIT_SLICE_NS 200000000ull
/* Most records one poll returns. */
#define POLL_RECORDS_MAX 65536
/* Delivery failures a producer keeps between flushes (beyond: counted). */
#define FAILURES_KEPT_MAX 65536

static PyObject *error_base, *error_not_found, *error_busy, *error_protocol, *error_log,
    *error_timeout, *error_unsupported;

/* Raises the intake.Error subclass for `code` (a negative errno) with the library's reason. */
static PyObject *raise_error(int code, const char *reason) {
    int number = code < 0 ? -code : code;
    PyObject *type = error_base;
    switch (number) {
    case ENOENT: type = error_not_found; break;
    case EBUSY: type = error_busy; break;
    case EPROTO: type = error_protocol; break;
    case EBADMSG:
    case EIO:
    case ESTALE:
    case EAGAIN: type = error_log; break;
    case ETIMEDOUT: type = error_timeout; break;
    case ENOTSUP: type = error_unsupported; break;
    }
    PyObject *exception =
        PyObject_CallFunction(type, "s", reason != NULL && reason[0] ? reason : strerror(number));
    if (exception == NULL) return NULL;
    PyObject *errno_value = PyLong_FromLong(number);
    if (errno_value != NULL && PyObject_SetAttrString(exception, "errno", errno_value) == 0)
        PyErr_SetObject(type, exception);
    Py_XDECREF(errno_value);
    Py_DECREF(exception);
    return NULL;
}

/* ------------------------------------------------------------------- _Log --- */

/* Owns one library handle (a consumer or a set) and exports its memory as buffers. */
typedef struct {
    PyObject_HEAD struct intake_consumer *consumer;
    struct intake_consumer_set *set;
    /* The region the next buffer request exports (set just before PyMemoryView_FromObject). */
    const uint8_t *export_bytes;
    Py_ssize_t export_length;
} LogObject;

static void log_dealloc(LogObject *self) {
    intake_consumer_close(self->consumer);
    intake_consumer_set_close(self->set);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int log_getbuffer(LogObject *self, Py_buffer *view, int flags) {
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "intake records are read-only");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, (void *)self->export_bytes,
                             self->export_length, 1, flags);
}

static PyBufferProcs log_buffer = {(getbufferproc)log_getbuffer, NULL};

static PyTypeObject LogType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "intake._Log",
    .tp_basicsize = sizeof(LogObject),
    .tp_dealloc = (destructor)log_dealloc,
    .tp_as_buffer = &log_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "the library handle behind a Consumer or ConsumerSet (internal)",
};

/* A read-only memoryview of `length` bytes at `bytes`, keeping `log` alive. */
static PyObject *log_view(LogObject *log, const uint8_t *bytes, size_t length) {
    static const uint8_t empty[1];
    log->export_bytes = bytes != NULL ? bytes : empty;
    log->export_length = (Py_ssize_t)length;
    return PyMemoryView_FromObject((PyObject *)log);
}

/* ----------------------------------------------------------------- Record --- */

typedef struct {
    PyObject_HEAD LogObject *log;
    PyObject *topic; /* str */
    struct intake_consumer_record record;
    struct intake_consumer_set_record set_record; /* for set records: record_valid */
    bool from_set;
    bool parsed;
    const char *problem;
    struct intake_bytes key, value, producer_id;
    uint64_t timestamp_ns, sequence;
    uint32_t header_count;
    PyObject *key_view, *value_view; /* made on first read */
} RecordObject;

static PyTypeObject RecordType;

static void record_dealloc(RecordObject *self) {
    Py_XDECREF(self->key_view);
    Py_XDECREF(self->value_view);
    Py_XDECREF(self->topic);
    Py_XDECREF(self->log);
    PyObject_Free(self);
}

static RecordObject *record_make(LogObject *log, PyObject *topic,
                                 const struct intake_consumer_record *record) {
    RecordObject *self = PyObject_New(RecordObject, &RecordType);
    if (self == NULL) return NULL;
    Py_INCREF(log);
    self->log = log;
    Py_INCREF(topic);
    self->topic = topic;
    self->record = *record;
    self->from_set = false;
    self->key_view = self->value_view = NULL;
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    self->parsed = intake_record_parse(record->bytes, record->length, &view) == 0;
    self->problem = view.problem;
    self->key = view.key;
    self->value = view.value;
    self->producer_id = view.producer_id;
    self->timestamp_ns = view.timestamp_ns;
    self->sequence = record->sequence;
    self->header_count = view.header_count;
    return self;
}

static PyObject *record_key(RecordObject *self, void *unused) {
    if (!self->parsed) Py_RETURN_NONE;
    if (self->key_view == NULL)
        self->key_view = log_view(self->log, self->key.bytes, self->key.length);
    Py_XINCREF(self->key_view);
    return self->key_view;
}

static PyObject *record_value(RecordObject *self, void *unused) {
    if (!self->parsed) Py_RETURN_NONE;
    if (self->value_view == NULL)
        self->value_view = log_view(self->log, self->value.bytes, self->value.length);
    Py_XINCREF(self->value_view);
    return self->value_view;
}

static PyObject *record_raw(RecordObject *self, void *unused) {
    return log_view(self->log, self->record.bytes, self->record.length);
}

static PyObject *record_topic(RecordObject *self, void *unused) {
    Py_INCREF(self->topic);
    return self->topic;
}

static PyObject *record_offset(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->record.offset);
}

static PyObject *record_sequence(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->sequence);
}

static PyObject *record_timestamp(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->timestamp_ns);
}

static PyObject *record_receive_time(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->record.receive_time_ns);
}

static PyObject *record_principal(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->record.principal);
}

static PyObject *record_missed(RecordObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(self->record.missed);
}

static PyObject *record_producer_id(RecordObject *self, void *unused) {
    if (!self->parsed || self->producer_id.bytes == NULL) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)self->producer_id.bytes,
                                     (Py_ssize_t)self->producer_id.length);
}

static PyObject *record_problem(RecordObject *self, void *unused) {
    if (self->parsed) Py_RETURN_NONE;
    return PyUnicode_FromString(self->problem != NULL ? self->problem : "does not parse");
}

/* [(key: str, value: memoryview), ...] in the order sent. */
static PyObject *record_headers(RecordObject *self, void *unused) {
    PyObject *list = PyList_New(0);
    if (list == NULL || !self->parsed || self->header_count == 0) return list;
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    if (intake_record_parse(self->record.bytes, self->record.length, &view) != 0) return list;
    struct intake_record_header_iterator iterator;
    struct intake_record_header header;
    intake_record_headers(&view, &iterator);
    int more;
    while ((more = intake_record_header_next(&iterator, &header)) == 1) {
        PyObject *key =
            PyUnicode_DecodeUTF8(header.key.bytes != NULL ? (const char *)header.key.bytes : "",
                                 (Py_ssize_t)header.key.length, "replace");
        PyObject *value = log_view(self->log, header.value.bytes, header.value.length);
        PyObject *pair = key && value ? PyTuple_Pack(2, key, value) : NULL;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (pair == NULL || PyList_Append(list, pair) != 0) {
            Py_XDECREF(pair);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return list;
}

static PyObject *record_valid(RecordObject *self, PyObject *unused) {
    bool valid;
    if (self->from_set)
        valid = self->log->set != NULL &&
                intake_consumer_set_record_valid(self->log->set, &self->set_record);
    else
        valid = self->log->consumer != NULL &&
                intake_consumer_record_valid(self->log->consumer, &self->record);
    return PyBool_FromLong(valid);
}

static PyObject *record_repr(RecordObject *self) {
    return PyUnicode_FromFormat("<intake.Record %U offset=%llu key=%zu bytes value=%zu bytes>",
                                self->topic, (unsigned long long)self->record.offset,
                                self->key.length, self->value.length);
}

static PyGetSetDef record_getset[] = {
    {"topic", (getter)record_topic, NULL, "the topic (str)", NULL},
    {"offset", (getter)record_offset, NULL, "the record's offset in its topic", NULL},
    {"key", (getter)record_key, NULL, "memoryview into the log (zero-copy)", NULL},
    {"value", (getter)record_value, NULL, "memoryview into the log (zero-copy)", NULL},
    {"headers", (getter)record_headers, NULL, "[(key: str, value: memoryview)]", NULL},
    {"timestamp_ns", (getter)record_timestamp, NULL, "the producer's timestamp", NULL},
    {"sequence", (getter)record_sequence, NULL, "the producer's sequence (0: none)", NULL},
    {"producer_id", (getter)record_producer_id, NULL, "bytes, or None", NULL},
    {"receive_time_ns", (getter)record_receive_time, NULL, "when intaked admitted it", NULL},
    {"principal", (getter)record_principal, NULL,
     "tag of the principal that wrote it (first 8 bytes of SHA-256 of its name, LE)", NULL},
    {"missed", (getter)record_missed, NULL, "records lost just before this one", NULL},
    {"raw", (getter)record_raw, NULL, "the encoded intake.v1.Record (memoryview)", NULL},
    {"problem", (getter)record_problem, NULL, "why it does not parse, or None", NULL},
    {NULL},
};

static PyMethodDef record_methods[] = {
    {"valid", (PyCFunction)record_valid, METH_NOARGS,
     "True while the writer has not begun overwriting this record's bytes"},
    {NULL},
};

static PyTypeObject RecordType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "intake.Record",
    .tp_basicsize = sizeof(RecordObject),
    .tp_dealloc = (destructor)record_dealloc,
    .tp_repr = (reprfunc)record_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "one record read from a topic's log; key, value and raw are zero-copy views",
    .tp_getset = record_getset,
    .tp_methods = record_methods,
};

/* ----------------------------------------------------- shared reader state --- */

/* What Consumer and ConsumerSet share: the _Log, a poll buffer, the busy flag. */
typedef struct {
    PyObject_HEAD LogObject *log; /* NULL once closed */
    PyObject *topic;              /* Consumer: its topic (str) */
    PyObject **set_topics;        /* ConsumerSet: str per topic index, made on first use */
    uint32_t set_topics_max;
    struct intake_consumer_record *records;
    struct intake_consumer_set_record *set_records;
    uint32_t capacity;
    bool busy;
} ReaderObject;

static int reader_enter(ReaderObject *self) {
    if (self->log == NULL) {
        raise_error(-EINVAL, "the consumer is closed");
        return -1;
    }
    if (self->busy) {
        raise_error(-EINVAL, "the consumer is in use by another thread");
        return -1;
    }
    self->busy = true;
    return 0;
}

static void reader_dealloc(ReaderObject *self) {
    Py_XDECREF(self->log);
    Py_XDECREF(self->topic);
    for (uint32_t index = 0; self->set_topics != NULL && index < self->set_topics_max; index++)
        Py_XDECREF(self->set_topics[index]);
    PyMem_Free(self->set_topics);
    PyMem_Free(self->records);
    PyMem_Free(self->set_records);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int reader_reserve(ReaderObject *self, uint32_t capacity, bool set) {
    if (capacity <= self->capacity) return 0;
    void *grown = set ? PyMem_Realloc(self->set_records, capacity * sizeof(*self->set_records))
                      : PyMem_Realloc(self->records, capacity * sizeof(*self->records));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (set)
        self->set_records = grown;
    else
        self->records = grown;
    self->capacity = capacity;
    return 0;
}

/* The start option: "committed", "earliest", "latest" or an offset (int). */
static int start_parse(PyObject *start, struct intake_consumer_options *options) {
    if (PyLong_Check(start)) {
        unsigned long long offset = PyLong_AsUnsignedLongLong(start);
        if (PyErr_Occurred()) return -1;
        options->start = INTAKE_CONSUMER_START_OFFSET;
        options->start_offset = offset;
        return 0;
    }
    const char *text = PyUnicode_Check(start) ? PyUnicode_AsUTF8(start) : NULL;
    if (text != NULL && strcmp(text, "committed") == 0)
        options->start = INTAKE_CONSUMER_START_COMMITTED;
    else if (text != NULL && strcmp(text, "earliest") == 0)
        options->start = INTAKE_CONSUMER_START_OLDEST;
    else if (text != NULL && strcmp(text, "latest") == 0)
        options->start = INTAKE_CONSUMER_START_END;
    else {
        PyErr_SetString(PyExc_ValueError,
                        "start is 'committed', 'earliest', 'latest' or an offset (int)");
        return -1;
    }
    return 0;
}

/* A name for an anonymous (ephemeral) consumer: unique in this process. */
static void anonymous_name(char *out, size_t capacity) {
    static atomic_uint counter;
    snprintf(out, capacity, "py-%d-%u", (int)getpid(), atomic_fetch_add(&counter, 1));
}

/* What Consumer and ConsumerSet take alike: the start, and a name (none: an anonymous,
 * ephemeral consumer named into `anonymous`); then a _Log for the handle. NULL on error. */
static LogObject *reader_prepare(PyObject *start, const char **name, char *anonymous,
                                 size_t anonymous_capacity,
                                 struct intake_consumer_options *options) {
    if (start != NULL && start_parse(start, options) != 0) return NULL;
    if (*name == NULL) {
        anonymous_name(anonymous, anonymous_capacity);
        *name = anonymous;
        options->ephemeral = true;
    }
    LogObject *log = PyObject_New(LogObject, &LogType);
    if (log == NULL) return NULL;
    log->consumer = NULL;
    log->set = NULL;
    return log;
}

/* Seconds (float or None) to nanoseconds: None waits without a deadline (UINT64_MAX). */
static int timeout_parse(PyObject *timeout, uint64_t *timeout_ns) {
    if (timeout == NULL || timeout == Py_None) {
        *timeout_ns = UINT64_MAX;
        return 0;
    }
    double seconds = PyFloat_AsDouble(timeout);
    if (PyErr_Occurred()) return -1;
    if (seconds < 0) seconds = 0;
    *timeout_ns = seconds >= 1.8e10 ? UINT64_MAX : (uint64_t)(seconds * 1e9);
    return 0;
}

/* Waits (GIL released, in slices so Ctrl-C is seen) until records may be there or the
 * timeout passes: 1, 0 (timed out) or -1 with an exception set. */
static int reader_wait(ReaderObject *self, uint64_t timeout_ns) {
    uint64_t waited_ns = 0;
    for (;;) {
        uint64_t slice_ns =
            timeout_ns - waited_ns < WAIT_SLICE_NS ? timeout_ns - waited_ns : WAIT_SLICE_NS;
        int result;
        struct timespec before, after;
        clock_gettime(CLOCK_MONOTONIC, &before);
        Py_BEGIN_ALLOW_THREADS;
        result = self->log->consumer != NULL ? intake_consumer_wait(self->log->consumer, slice_ns)
                                             : intake_consumer_set_wait(self->log->set, slice_ns);
        Py_END_ALLOW_THREADS;
        clock_gettime(CLOCK_MONOTONIC, &after);
        if (result == 1) return 1;
        if (result < 0 && result != -EINTR) {
            raise_error(result, self->log->consumer != NULL
                                    ? intake_consumer_error(self->log->consumer)
                                    : intake_consumer_set_error(self->log->set));
            return -1;
        }
        if (PyErr_CheckSignals() != 0) return -1;
        uint64_t elapsed = (uint64_t)(after.tv_sec - before.tv_sec) * 1000000000ull +
                           (uint64_t)(after.tv_nsec - before.tv_nsec);
        waited_ns = timeout_ns - waited_ns < elapsed ? timeout_ns : waited_ns + elapsed;
        if (timeout_ns != UINT64_MAX && waited_ns >= timeout_ns) return 0;
    }
}

static PyObject *set_topic_string(ReaderObject *self, const struct intake_consumer_set_record *r) {
    if (r->topic_index >= self->set_topics_max) return PyUnicode_FromString(r->topic);
    PyObject **slot = &self->set_topics[r->topic_index];
    /* A topic index may be reused for another topic after a rescan: compare the name. */
    if (*slot != NULL && strcmp(PyUnicode_AsUTF8(*slot), r->topic) != 0) Py_CLEAR(*slot);
    if (*slot == NULL) *slot = PyUnicode_FromString(r->topic);
    Py_XINCREF(*slot);
    return *slot;
}

/* One non-blocking poll of up to `capacity` records into a new list (may be empty). */
static PyObject *reader_poll_once(ReaderObject *self, uint32_t capacity) {
    bool set = self->log->set != NULL;
    if (reader_reserve(self, capacity, set) != 0) return NULL;
    int count = set ? intake_consumer_set_poll(self->log->set, self->set_records, capacity)
                    : intake_consumer_poll_batch(self->log->consumer, self->records, capacity);
    if (count < 0)
        return raise_error(count, set ? intake_consumer_set_error(self->log->set)
                                      : intake_consumer_error(self->log->consumer));
    PyObject *list = PyList_New(count);
    if (list == NULL) return NULL;
    for (int index = 0; index < count; index++) {
        RecordObject *record;
        if (set) {
            PyObject *topic = set_topic_string(self, &self->set_records[index]);
            if (topic == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            record = record_make(self->log, topic, &self->set_records[index].record);
            Py_DECREF(topic);
            if (record != NULL) {
                record->from_set = true;
                record->set_record = self->set_records[index];
            }
        } else {
            record = record_make(self->log, self->topic, &self->records[index]);
        }
        if (record == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, index, (PyObject *)record);
    }
    return list;
}

static PyObject *reader_poll(ReaderObject *self, PyObject *args, PyObject *keywords) {
    static char *names[] = {"max_records", "timeout", NULL};
    unsigned int max_records = 1024;
    PyObject *timeout = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "|IO", names, &max_records, &timeout))
        return NULL;
    uint64_t timeout_ns = 0;
    if (timeout != NULL && timeout_parse(timeout, &timeout_ns) != 0) return NULL;
    if (max_records == 0 || max_records > POLL_RECORDS_MAX) {
        PyErr_Format(PyExc_ValueError, "max_records must be 1..%d", POLL_RECORDS_MAX);
        return NULL;
    }
    if (reader_enter(self) != 0) return NULL;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t start_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    uint64_t deadline_ns = timeout_ns > UINT64_MAX - start_ns ? UINT64_MAX : start_ns + timeout_ns;
    PyObject *list = reader_poll_once(self, max_records);
    while (list != NULL && PyList_GET_SIZE(list) == 0 && timeout_ns > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
        if (now_ns >= deadline_ns) break;
        /* A wake-up may find nothing for us (another topic's publish, a rescan): wait again
         * for what is left of the timeout. */
        int woken =
            reader_wait(self, deadline_ns == UINT64_MAX ? UINT64_MAX : deadline_ns - now_ns);
        if (woken < 0) Py_CLEAR(list);
        if (woken <= 0) break;
        Py_DECREF(list);
        list = reader_poll_once(self, max_records);
    }
    self->busy = false;
    return list;
}

/* Iteration: one record per step, waiting as long as it takes (Ctrl-C stops it). */
static PyObject *reader_next(ReaderObject *self) {
    if (reader_enter(self) != 0) return NULL;
    PyObject *result = NULL;
    for (;;) {
        PyObject *list = reader_poll_once(self, 1);
        if (list == NULL) break;
        if (PyList_GET_SIZE(list) == 1) {
            result = PyList_GET_ITEM(list, 0);
            Py_INCREF(result);
            Py_DECREF(list);
            break;
        }
        Py_DECREF(list);
        if (reader_wait(self, UINT64_MAX) < 0) break;
    }
    self->busy = false;
    return result;
}

static PyObject *reader_iter(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static PyObject *reader_commit(ReaderObject *self, PyObject *unused) {
    if (reader_enter(self) != 0) return NULL;
    if (self->log->consumer != NULL)
        intake_consumer_commit(self->log->consumer);
    else
        intake_consumer_set_commit(self->log->set);
    self->busy = false;
    Py_RETURN_NONE;
}

static PyObject *reader_close(ReaderObject *self, PyObject *unused) {
    if (self->busy) return raise_error(-EINVAL, "the consumer is in use by another thread");
    /* The handle closes once no record or view of it remains (see the file's comment). */
    Py_CLEAR(self->log);
    Py_RETURN_NONE;
}

static PyObject *reader_enter_context(PyObject *self, PyObject *unused) {
    Py_INCREF(self);
    return self;
}

static PyObject *reader_exit_context(ReaderObject *self, PyObject *args) {
    PyObject *result = reader_close(self, NULL);
    Py_XDECREF(result);
    if (result == NULL) return NULL;
    Py_RETURN_FALSE;
}

static PyObject *reader_missed(ReaderObject *self, void *unused) {
    if (self->log == NULL) return PyLong_FromLong(0);
    if (self->log->consumer != NULL)
        return PyLong_FromUnsignedLongLong(intake_consumer_missed_total(self->log->consumer));
    struct intake_consumer_set_stats stats = {.struct_bytes = sizeof(stats)};
    intake_consumer_set_stats(self->log->set, &stats);
    return PyLong_FromUnsignedLongLong(stats.missed_total);
}

static PyObject *reader_writer_alive(ReaderObject *self, void *unused) {
    if (self->log == NULL) Py_RETURN_FALSE;
    return PyBool_FromLong(self->log->consumer != NULL
                               ? intake_consumer_writer_alive(self->log->consumer)
                               : intake_consumer_set_writer_alive(self->log->set));
}

static PyObject *reader_closed(ReaderObject *self, void *unused) {
    return PyBool_FromLong(self->log == NULL);
}

static PyMethodDef reader_methods[] = {
    {"poll", (PyCFunction)(void (*)(void))reader_poll, METH_VARARGS | METH_KEYWORDS,
     "poll(max_records=1024, timeout=0.0) -> [Record]: what is there now; with a timeout "
     "(seconds, None: no limit), waits for at least one record"},
    {"commit", (PyCFunction)reader_commit, METH_NOARGS,
     "commit the cursor after the last record returned"},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "close (once no record of it remains)"},
    {"__enter__", reader_enter_context, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)reader_exit_context, METH_VARARGS, NULL},
    {NULL},
};

static PyGetSetDef reader_getset[] = {
    {"missed", (getter)reader_missed, NULL, "records lost so far (lapped, overwrite)", NULL},
    {"writer_alive", (getter)reader_writer_alive, NULL, "whether intaked serves the log", NULL},
    {"closed", (getter)reader_closed, NULL, "whether close() was called", NULL},
    {NULL},
};

/* --------------------------------------------------------------- Consumer --- */

static int consumer_init(ReaderObject *self, PyObject *args, PyObject *keywords) {
    static char *names[] = {"topic", "shm_dir", "name", "start", NULL};
    const char *topic = NULL, *directory = "/dev/shm/intake", *name = NULL;
    PyObject *start = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "s|szO", names, &topic, &directory, &name,
                                     &start))
        return -1;
    if (self->log != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Consumer is already open");
        return -1;
    }
    struct intake_consumer_options options = INTAKE_CONSUMER_OPTIONS_INIT;
    char anonymous[64];
    LogObject *log = reader_prepare(start, &name, anonymous, sizeof(anonymous), &options);
    if (log == NULL) return -1;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result;
    Py_BEGIN_ALLOW_THREADS;
    result =
        intake_consumer_open(directory, topic, name, &options, &log->consumer, why, sizeof(why));
    Py_END_ALLOW_THREADS;
    if (result != 0) {
        Py_DECREF(log);
        raise_error(result, why);
        return -1;
    }
    self->log = log;
    self->topic = PyUnicode_FromString(topic);
    return self->topic != NULL ? 0 : -1;
}

static PyTypeObject ConsumerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "intake.Consumer",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Consumer(topic, shm_dir='/dev/shm/intake', name=None, start='committed'): one "
              "topic's log read in place; name None is an anonymous (ephemeral) consumer",
    .tp_iter = reader_iter,
    .tp_iternext = (iternextfunc)reader_next,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
    .tp_init = (initproc)consumer_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------ ConsumerSet --- */

static int consumer_set_init(ReaderObject *self, PyObject *args, PyObject *keywords) {
    static char *names[] = {"topics", "shm_dir", "name", "start", "topics_max", NULL};
    PyObject *topics = Py_None, *start = NULL;
    const char *directory = "/dev/shm/intake", *name = NULL;
    unsigned int topics_max = 0;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "|OszOI", names, &topics, &directory, &name,
                                     &start, &topics_max))
        return -1;
    if (self->log != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ConsumerSet is already open");
        return -1;
    }
    struct intake_consumer_options consumer = INTAKE_CONSUMER_OPTIONS_INIT;
    char anonymous[64];
    LogObject *log = reader_prepare(start, &name, anonymous, sizeof(anonymous), &consumer);
    if (log == NULL) return -1;
    struct intake_consumer_set_options options = INTAKE_CONSUMER_SET_OPTIONS_INIT;
    options.consumer = &consumer;
    PyObject *sequence = NULL;
    const char **list = NULL;
    if (topics == Py_None) {
        options.all_topics = true;
        options.topics_max = topics_max ? topics_max : 1024;
    } else {
        sequence = PySequence_Fast(topics, "topics is a list of str, or None (every topic)");
        if (sequence == NULL) {
            Py_DECREF(log);
            return -1;
        }
        Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
        list = PyMem_Calloc((size_t)count + 1, sizeof(*list));
        if (list == NULL) {
            Py_DECREF(sequence);
            Py_DECREF(log);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t index = 0; index < count; index++) {
            list[index] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(sequence, index));
            if (list[index] == NULL) {
                PyMem_Free(list);
                Py_DECREF(sequence);
                Py_DECREF(log);
                return -1;
            }
        }
        options.topics = list;
        options.topic_count = (uint32_t)count;
        options.topics_max = topics_max ? topics_max : (uint32_t)count;
    }
    int result;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    Py_BEGIN_ALLOW_THREADS;
    result = intake_consumer_set_open(directory, name, &options, &log->set, why, sizeof(why));
    Py_END_ALLOW_THREADS;
    PyMem_Free(list);
    Py_XDECREF(sequence);
    if (result != 0) {
        Py_DECREF(log);
        raise_error(result, why);
        return -1;
    }
    self->log = log;
    self->set_topics_max = options.topics_max;
    self->set_topics = PyMem_Calloc(options.topics_max, sizeof(*self->set_topics));
    if (self->set_topics == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyTypeObject ConsumerSetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "intake.ConsumerSet",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ConsumerSet(topics=None, shm_dir='/dev/shm/intake', name=None, "
              "start='committed', topics_max=0): many topics through one handle; None: every "
              "topic, including later ones",
    .tp_iter = reader_iter,
    .tp_iternext = (iternextfunc)reader_next,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
    .tp_init = (initproc)consumer_set_init,
    .tp_new = PyType_GenericNew,
};

/* -------------------------------------------------------------- _Producer --- */

/* One failed record, kept for flush to report. */
struct failure {
    uint64_t sequence;
    int status;
    char topic[INTAKE_PRODUCER_TOPIC_BYTES_MAX + 1];
    char detail[256];
};

typedef struct {
    PyObject_HEAD struct intake_producer *producer;
    bool busy;
    /* Filled by the delivery callback (GIL released: plain C only). */
    struct failure *failures;
    size_t failure_count, failure_capacity;
    uint64_t failures_not_kept;
} ProducerObject;

static void producer_on_delivery(void *context, const struct intake_producer_delivery *report) {
    ProducerObject *self = context;
    if (report->status == INTAKE_DELIVERY_OK) return;
    if (self->failure_count == self->failure_capacity) {
        size_t capacity = self->failure_capacity ? self->failure_capacity * 2 : 16;
        struct failure *grown = capacity <= FAILURES_KEPT_MAX
                                    ? realloc(self->failures, capacity * sizeof(*grown))
                                    : NULL;
        if (grown == NULL) {
            self->failures_not_kept++;
            return;
        }
        self->failures = grown;
        self->failure_capacity = capacity;
    }
    struct failure *failure = &self->failures[self->failure_count++];
    failure->sequence = report->sequence;
    failure->status = (int)report->status;
    size_t topic_length = report->topic_length < INTAKE_PRODUCER_TOPIC_BYTES_MAX
                              ? report->topic_length
                              : INTAKE_PRODUCER_TOPIC_BYTES_MAX;
    memcpy(failure->topic, report->topic, topic_length);
    failure->topic[topic_length] = '\0';
    snprintf(failure->detail, sizeof(failure->detail), "%s", report->detail);
}

static void producer_dealloc(ProducerObject *self) {
    intake_producer_close(self->producer);
    free(self->failures);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int producer_enter(ProducerObject *self) {
    if (self->producer == NULL) {
        raise_error(-EINVAL, "the producer is closed");
        return -1;
    }
    if (self->busy) {
        raise_error(-EINVAL, "the producer is in use by another thread");
        return -1;
    }
    self->busy = true;
    return 0;
}

static int producer_init(ProducerObject *self, PyObject *args, PyObject *keywords) {
    static char *names[] = {"address", "producer_id",     "acks",       "tls_ca", "tls_cert",
                            "tls_key", "tls_server_name", "idempotent", NULL};
    const char *address = "127.0.0.1:7411", *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL,
               *tls_server_name = NULL;
    Py_buffer producer_id = {.buf = NULL, .len = 0};
    int acks = 1, idempotent = 0;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "|sz*pzzzzp", names, &address, &producer_id,
                                     &acks, &tls_ca, &tls_cert, &tls_key, &tls_server_name,
                                     &idempotent))
        return -1;
    if (self->producer != NULL) {
        PyBuffer_Release(&producer_id);
        PyErr_SetString(PyExc_RuntimeError, "Producer is already open");
        return -1;
    }
    struct intake_producer_config config = INTAKE_PRODUCER_CONFIG_INIT;
    config.address = address;
    config.acks = acks != 0;
    config.idempotent = idempotent != 0;
    config.producer_id = producer_id.buf;
    config.producer_id_length = (size_t)producer_id.len;
    config.tls_ca_file = tls_ca;
    config.tls_cert_file = tls_cert;
    config.tls_key_file = tls_key;
    config.tls_server_name = tls_server_name;
    config.on_delivery = producer_on_delivery;
    config.delivery_context = self;
    char why[512];
    int result;
    Py_BEGIN_ALLOW_THREADS;
    result = intake_producer_open(&config, &self->producer, why, sizeof(why));
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&producer_id);
    if (result != 0) {
        raise_error(result, why);
        return -1;
    }
    return 0;
}

/* str (UTF-8) or any bytes-like object, as a buffer. */
static int bytes_argument(PyObject *object, Py_buffer *buffer, const char *what) {
    if (PyUnicode_Check(object)) {
        Py_ssize_t length;
        const char *text = PyUnicode_AsUTF8AndSize(object, &length);
        if (text == NULL) return -1;
        return PyBuffer_FillInfo(buffer, object, (void *)text, length, 1, PyBUF_SIMPLE);
    }
    if (PyObject_GetBuffer(object, buffer, PyBUF_SIMPLE) != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like or str", what);
        return -1;
    }
    return 0;
}

#define SEND_HEADERS_INLINE 8

static PyObject *producer_send(ProducerObject *self, PyObject *args, PyObject *keywords) {
    static char *names[] = {"topic", "value", "key", "headers", "timestamp_ns", NULL};
    const char *topic = NULL;
    PyObject *value_object = NULL, *key_object = NULL, *headers_object = NULL;
    unsigned long long timestamp_ns = 0;
    if (!PyArg_ParseTupleAndKeywords(args, keywords, "sO|OOK", names, &topic, &value_object,
                                     &key_object, &headers_object, &timestamp_ns))
        return NULL;
    PyObject *headers_sequence = NULL;
    Py_ssize_t header_count = 0;
    if (headers_object != NULL && headers_object != Py_None) {
        headers_sequence = PySequence_Fast(headers_object, "headers is a sequence of pairs");
        if (headers_sequence == NULL) return NULL;
        header_count = PySequence_Fast_GET_SIZE(headers_sequence);
    }
    Py_buffer value = {.buf = NULL}, key = {.buf = NULL};
    Py_buffer inline_buffers[2 * SEND_HEADERS_INLINE];
    struct intake_producer_header inline_headers[SEND_HEADERS_INLINE];
    Py_buffer *header_buffers = inline_buffers;
    struct intake_producer_header *headers = inline_headers;
    Py_ssize_t filled = 0;
    PyObject *result = NULL;
    if (header_count > SEND_HEADERS_INLINE) {
        header_buffers = PyMem_Calloc((size_t)header_count * 2, sizeof(*header_buffers));
        headers = PyMem_Calloc((size_t)header_count, sizeof(*headers));
        if (header_buffers == NULL || headers == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (bytes_argument(value_object, &value, "value") != 0) goto done;
    if (key_object != NULL && bytes_argument(key_object, &key, "key") != 0) goto done;
    for (; filled < header_count; filled++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(headers_sequence, filled);
        PyObject *header_key, *header_value;
        if (!PyArg_ParseTuple(pair, "OO;a header is a (key, value) pair", &header_key,
                              &header_value))
            goto done;
        if (bytes_argument(header_key, &header_buffers[2 * filled], "a header key") != 0) goto done;
        if (bytes_argument(header_value, &header_buffers[2 * filled + 1], "a header value") != 0) {
            PyBuffer_Release(&header_buffers[2 * filled]);
            goto done;
        }
        headers[filled] = (struct intake_producer_header){
            header_buffers[2 * filled].buf, (size_t)header_buffers[2 * filled].len,
            header_buffers[2 * filled + 1].buf, (size_t)header_buffers[2 * filled + 1].len};
    }
    if (producer_enter(self) != 0) goto done;
    struct intake_producer_record record = INTAKE_PRODUCER_RECORD_INIT;
    record.topic = topic;
    record.value = value.buf;
    record.value_length = (size_t)value.len;
    record.key = key.buf;
    record.key_length = key.buf != NULL ? (size_t)key.len : 0;
    record.headers = headers;
    record.header_count = (uint32_t)header_count;
    record.timestamp_ns = timestamp_ns;
    uint64_t sequence = 0;
    int sent;
    Py_BEGIN_ALLOW_THREADS;
    sent = intake_producer_send_record(self->producer, &record, &sequence);
    Py_END_ALLOW_THREADS;
    self->busy = false;
    if (sent != 0)
        raise_error(sent, intake_producer_last_error(self->producer));
    else
        result = PyLong_FromUnsignedLongLong(sequence);
done:
    for (Py_ssize_t index = 0; index < filled; index++) {
        PyBuffer_Release(&header_buffers[2 * index]);
        PyBuffer_Release(&header_buffers[2 * index + 1]);
    }
    if (header_buffers != inline_buffers) PyMem_Free(header_buffers);
    if (headers != inline_headers) PyMem_Free(headers);
    if (value.buf != NULL) PyBuffer_Release(&value);
    if (key.buf != NULL) PyBuffer_Release(&key);
    Py_XDECREF(headers_sequence);
    return result;
}

/* _wait(timeout_ms): flush, then wait for acks of everything sent (-1: no limit). Returns
 * (errno, reason, acked, last_sequence); errno 0 when everything was acknowledged. */
static PyObject *producer_wait(ProducerObject *self, PyObject *args) {
    int timeout_ms = -1;
    if (!PyArg_ParseTuple(args, "i", &timeout_ms)) return NULL;
    if (producer_enter(self) != 0) return NULL;
    int result;
    uint64_t last = intake_producer_last_sequence(self->producer);
    Py_BEGIN_ALLOW_THREADS;
    result = intake_producer_flush(self->producer);
    if (result == 0 && last > 0)
        result = intake_producer_wait_acks(self->producer, last, timeout_ms);
    Py_END_ALLOW_THREADS;
    self->busy = false;
    return Py_BuildValue(
        "(isKK)", -result, result != 0 ? intake_producer_last_error(self->producer) : "",
        (unsigned long long)intake_producer_acked(self->producer), (unsigned long long)last);
}

/* _take_failures() -> ([(sequence, status, topic, detail)], not_kept): reported failures since
 * the last call. */
static PyObject *producer_take_failures(ProducerObject *self, PyObject *unused) {
    PyObject *list = PyList_New((Py_ssize_t)self->failure_count);
    if (list == NULL) return NULL;
    for (size_t index = 0; index < self->failure_count; index++) {
        const struct failure *failure = &self->failures[index];
        PyObject *item = Py_BuildValue("(Kiss)", (unsigned long long)failure->sequence,
                                       failure->status, failure->topic, failure->detail);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)index, item);
    }
    PyObject *result = Py_BuildValue("(NK)", list, (unsigned long long)self->failures_not_kept);
    self->failure_count = 0;
    self->failures_not_kept = 0;
    return result;
}

static PyObject *producer_close(ProducerObject *self, PyObject *unused) {
    if (self->busy) return raise_error(-EINVAL, "the producer is in use by another thread");
    intake_producer_close(self->producer);
    self->producer = NULL;
    Py_RETURN_NONE;
}

static PyObject *producer_last_sequence(ProducerObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(intake_producer_last_sequence(self->producer));
}

static PyObject *producer_acked(ProducerObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(intake_producer_acked(self->producer));
}

static PyObject *producer_closed(ProducerObject *self, void *unused) {
    return PyBool_FromLong(self->producer == NULL);
}

static PyMethodDef producer_methods[] = {
    {"send", (PyCFunction)(void (*)(void))producer_send, METH_VARARGS | METH_KEYWORDS,
     "send(topic, value, key=b'', headers=(), timestamp_ns=0) -> sequence"},
    {"_wait", (PyCFunction)producer_wait, METH_VARARGS, NULL},
    {"_take_failures", (PyCFunction)producer_take_failures, METH_NOARGS, NULL},
    {"close", (PyCFunction)producer_close, METH_NOARGS, "close the connection (sends nothing)"},
    {NULL},
};

static PyGetSetDef producer_getset[] = {
    {"last_sequence", (getter)producer_last_sequence, NULL, "highest sequence sent", NULL},
    {"acked", (getter)producer_acked, NULL, "highest sequence acknowledged", NULL},
    {"closed", (getter)producer_closed, NULL, "whether close() was called", NULL},
    {NULL},
};

static PyTypeObject ProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "intake._Producer",
    .tp_basicsize = sizeof(ProducerObject),
    .tp_dealloc = (destructor)producer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "the library's producer (intake.Producer is the public class)",
    .tp_methods = producer_methods,
    .tp_getset = producer_getset,
    .tp_init = (initproc)producer_init,
    .tp_new = PyType_GenericNew,
};

/* ----------------------------------------------------------------- module --- */

static PyObject *module_version(PyObject *module, PyObject *unused) {
    return PyUnicode_FromString(intake_version());
}

static PyMethodDef module_methods[] = {
    {"library_version", module_version, METH_NOARGS, "the loaded libintake's version"},
    {NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "intake._intake", "libintake for Python (see intake)", -1,
    module_methods,
};

static int add_error(PyObject *module, PyObject **slot, const char *name, PyObject *base,
                     const char *doc) {
    char qualified[64];
    snprintf(qualified, sizeof(qualified), "intake.%s", name);
    *slot = PyErr_NewExceptionWithDoc(qualified, doc, base, NULL);
    if (*slot == NULL) return -1;
    Py_INCREF(*slot);
    return PyModule_AddObject(module, name, *slot);
}

PyMODINIT_FUNC PyInit__intake(void) {
    if (PyType_Ready(&LogType) < 0 || PyType_Ready(&RecordType) < 0 ||
        PyType_Ready(&ConsumerType) < 0 || PyType_Ready(&ConsumerSetType) < 0 ||
        PyType_Ready(&ProducerType) < 0)
        return NULL;
    if (intake_version_number() < INTAKE_VERSION_NUMBER) {
        PyErr_Format(PyExc_ImportError,
                     "libintake %s is older than the one intake was built for (%s)",
                     intake_version(), INTAKE_VERSION_STRING);
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) return NULL;
    if (add_error(module, &error_base, "Error", NULL,
                  "an error from libintake: args are (errno, the library's one-line reason)") ||
        add_error(module, &error_not_found, "NotFoundError", error_base,
                  "no such topic log (ENOENT)") ||
        add_error(module, &error_busy, "BusyError", error_base,
                  "the consumer name is in use, or every slot is (EBUSY)") ||
        add_error(module, &error_protocol, "ProtocolError", error_base,
                  "intake refused (a non-OK Ack, EPROTO)") ||
        add_error(module, &error_log, "LogError", error_base,
                  "the log is damaged, truncated or replaced (EBADMSG, EIO, ESTALE, EAGAIN)") ||
        add_error(module, &error_timeout, "TimeoutError", error_base, "timed out (ETIMEDOUT)") ||
        add_error(module, &error_unsupported, "UnsupportedError", error_base,
                  "not supported by this libintake (ENOTSUP)"))
        return NULL;
    Py_INCREF(&RecordType);
    Py_INCREF(&ConsumerType);
    Py_INCREF(&ConsumerSetType);
    Py_INCREF(&ProducerType);
    if (PyModule_AddObject(module, "Record", (PyObject *)&RecordType) ||
        PyModule_AddObject(module, "Consumer", (PyObject *)&ConsumerType) ||
        PyModule_AddObject(module, "ConsumerSet", (PyObject *)&ConsumerSetType) ||
        PyModule_AddObject(module, "_Producer", (PyObject *)&ProducerType))
        return NULL;
    return module;
}
