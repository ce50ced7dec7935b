package intake

/*
#include <errno.h>
#include <stdlib.h>
#include <intake/consumer.h>

// Opens a consumer; the options are built here, in C memory.
static int go_consumer_open(const char *directory, const char *topic, const char *name, int start,
                            unsigned long long start_offset, int ephemeral,
                            struct intake_consumer **out, char *why, size_t why_capacity) {
    struct intake_consumer_options options = INTAKE_CONSUMER_OPTIONS_INIT;
    options.start = (enum intake_consumer_start)start;
    options.start_offset = start_offset;
    options.ephemeral = ephemeral != 0;
    return intake_consumer_open(directory, topic, name, &options, out, why, why_capacity);
}

static int go_consumer_set_open(const char *directory, const char *name, int start,
                                unsigned long long start_offset, int ephemeral,
                                const char *const *topics, unsigned topic_count,
                                unsigned topics_max, struct intake_consumer_set **out, char *why,
                                size_t why_capacity) {
    struct intake_consumer_options consumer = INTAKE_CONSUMER_OPTIONS_INIT;
    consumer.start = (enum intake_consumer_start)start;
    consumer.start_offset = start_offset;
    consumer.ephemeral = ephemeral != 0;
    struct intake_consumer_set_options options = INTAKE_CONSUMER_SET_OPTIONS_INIT;
    options.consumer = &consumer;
    options.all_topics = topics == NULL;
    options.topics = topics;
    options.topic_count = topic_count;
    options.topics_max = topics_max;
    return intake_consumer_set_open(directory, name, &options, out, why, why_capacity);
}

// The record's fields, parsed in C so that Go makes one call per record.
struct go_record {
    struct intake_record_view view;
    int parsed;
};

static void go_records_parse(const struct intake_consumer_record *records, int count,
                             struct go_record *out) {
    for (int index = 0; index < count; index++) {
        out[index].view = (struct intake_record_view)INTAKE_RECORD_VIEW_INIT;
        out[index].parsed = intake_record_parse(records[index].bytes, records[index].length,
                                                &out[index].view) == 0;
    }
}

static void go_set_records_split(const struct intake_consumer_set_record *records, int count,
                                 struct intake_consumer_record *out) {
    for (int index = 0; index < count; index++) out[index] = records[index].record;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Start says where a consumer begins.
type Start int

const (
	// StartCommitted resumes from the name's committed cursor (the oldest record for a name
	// that never committed, and for an anonymous consumer).
	StartCommitted Start = C.INTAKE_CONSUMER_START_COMMITTED
	// StartEarliest begins at the oldest record still in the log.
	StartEarliest Start = C.INTAKE_CONSUMER_START_OLDEST
	// StartLatest reads only records published after the open.
	StartLatest Start = C.INTAKE_CONSUMER_START_END
	// StartOffset begins at ConsumerOptions.Offset (or the next record after it).
	StartOffset Start = C.INTAKE_CONSUMER_START_OFFSET
)

// ConsumerOptions for OpenConsumer and OpenConsumerSet. The zero value is an anonymous
// consumer resuming from StartCommitted (that is, the oldest record).
type ConsumerOptions struct {
	// Name registers the consumer under a name (1..63 bytes) that keeps its committed cursor
	// across restarts; "" is an anonymous consumer whose slot is freed on Close.
	Name   string
	Start  Start
	Offset uint64 // for StartOffset
	// TopicsMax bounds a set (OpenConsumerSet; 0: the listed topics, or 1024 for all).
	TopicsMax int
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte // zero-copy, as Record.Value
}

// Record is one record read from a topic's log.
type Record struct {
	Topic         string
	Offset        uint64
	Key           []byte // zero-copy: see the package comment
	Value         []byte // zero-copy: see the package comment
	Headers       []Header
	TimestampNs   uint64 // the producer's
	Sequence      uint64 // the producer's (0: none)
	ProducerID    []byte // nil when none
	ReceiveTimeNs uint64 // when intaked admitted it
	Missed        uint64 // records lost just before this one (overwrite retention)
	// Problem says why the record's bytes do not parse ("" when they do); Raw holds them.
	Problem string
	Raw     []byte

	record C.struct_intake_consumer_record
	owner  *reader
	index  uint32 // set records: the topic's index
}

// Clone copies the record's bytes out of the log, so it stays valid forever.
func (r Record) Clone() Record {
	clone := r
	clone.Key = append([]byte(nil), r.Key...)
	clone.Value = append([]byte(nil), r.Value...)
	clone.Raw = append([]byte(nil), r.Raw...)
	clone.ProducerID = append([]byte(nil), r.ProducerID...)
	clone.Headers = make([]Header, len(r.Headers))
	for index, header := range r.Headers {
		clone.Headers[index] = Header{header.Key, append([]byte(nil), header.Value...)}
	}
	clone.owner = nil
	return clone
}

// Valid reports whether the writer has not begun overwriting the record's bytes (always true
// in block retention before the next Poll).
func (r Record) Valid() bool {
	if r.owner == nil {
		return false
	}
	r.owner.mutex.Lock()
	defer r.owner.mutex.Unlock()
	if r.owner.consumer != nil {
		return bool(C.intake_consumer_record_valid(r.owner.consumer, &r.record))
	}
	if r.owner.set != nil {
		setRecord := C.struct_intake_consumer_set_record{record: r.record, topic_index: C.uint32_t(r.index)}
		return bool(C.intake_consumer_set_record_valid(r.owner.set, &setRecord))
	}
	return false
}

// reader is what Consumer and ConsumerSet share: the handle, C arrays for polling.
type reader struct {
	mutex      sync.Mutex
	consumer   *C.struct_intake_consumer
	set        *C.struct_intake_consumer_set
	topic      string
	setTopics  map[uint32]string
	records    *C.struct_intake_consumer_record
	setRecords *C.struct_intake_consumer_set_record
	parsed     *C.struct_go_record
	capacity   int
}

// Consumer reads one topic's log.
type Consumer struct{ reader }

// ConsumerSet reads many topics (or every topic, including later ones) through one handle.
type ConsumerSet struct{ reader }

var anonymousCount uint64

func anonymousName() string {
	return fmt.Sprintf("go-%d-%d", os.Getpid(), atomic.AddUint64(&anonymousCount, 1))
}

// OpenConsumer opens `topic`'s log in shmDir (intaked's --shm-dir, e.g. /dev/shm/intake).
func OpenConsumer(shmDir, topic string, opts ConsumerOptions) (*Consumer, error) {
	name, ephemeral := opts.Name, 0
	if name == "" {
		name, ephemeral = anonymousName(), 1
	}
	cDirectory, cTopic, cName := C.CString(shmDir), C.CString(topic), C.CString(name)
	defer C.free(unsafe.Pointer(cDirectory))
	defer C.free(unsafe.Pointer(cTopic))
	defer C.free(unsafe.Pointer(cName))
	why := (*C.char)(C.malloc(C.INTAKE_CONSUMER_ERROR_BYTES))
	defer C.free(unsafe.Pointer(why))
	consumer := &Consumer{}
	consumer.topic = topic
	code := C.go_consumer_open(cDirectory, cTopic, cName, C.int(opts.Start),
		C.ulonglong(opts.Offset), C.int(ephemeral), &consumer.consumer, why,
		C.INTAKE_CONSUMER_ERROR_BYTES)
	if code != 0 {
		return nil, newError(code, C.GoString(why))
	}
	return consumer, nil
}

// OpenConsumerSet opens the listed topics of shmDir, or with topics nil every topic there,
// including those created later (up to opts.TopicsMax).
func OpenConsumerSet(shmDir string, topics []string, opts ConsumerOptions) (*ConsumerSet, error) {
	name, ephemeral := opts.Name, 0
	if name == "" {
		name, ephemeral = anonymousName(), 1
	}
	topicsMax := opts.TopicsMax
	if topicsMax == 0 {
		topicsMax = len(topics)
		if topics == nil {
			topicsMax = 1024
		}
	}
	cDirectory, cName := C.CString(shmDir), C.CString(name)
	defer C.free(unsafe.Pointer(cDirectory))
	defer C.free(unsafe.Pointer(cName))
	var cTopics **C.char
	if topics != nil {
		cTopics = (**C.char)(C.calloc(C.size_t(len(topics)+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(cTopics))
		list := unsafe.Slice(cTopics, len(topics))
		for index, topic := range topics {
			list[index] = C.CString(topic)
			defer C.free(unsafe.Pointer(list[index]))
		}
	}
	why := (*C.char)(C.malloc(C.INTAKE_CONSUMER_ERROR_BYTES))
	defer C.free(unsafe.Pointer(why))
	set := &ConsumerSet{}
	set.setTopics = map[uint32]string{}
	code := C.go_consumer_set_open(cDirectory, cName, C.int(opts.Start), C.ulonglong(opts.Offset),
		C.int(ephemeral), cTopics, C.unsigned(len(topics)), C.unsigned(topicsMax), &set.set, why,
		C.INTAKE_CONSUMER_ERROR_BYTES)
	if code != 0 {
		return nil, newError(code, C.GoString(why))
	}
	return set, nil
}

var errClosed = errors.New("intake: the consumer is closed")

func (r *reader) reason() string {
	if r.consumer != nil {
		return C.GoString(C.intake_consumer_error(r.consumer))
	}
	return C.GoString(C.intake_consumer_set_error(r.set))
}

func (r *reader) reserve(capacity int) {
	if capacity <= r.capacity {
		return
	}
	C.free(unsafe.Pointer(r.records))
	C.free(unsafe.Pointer(r.setRecords))
	C.free(unsafe.Pointer(r.parsed))
	r.records = (*C.struct_intake_consumer_record)(C.calloc(C.size_t(capacity), C.sizeof_struct_intake_consumer_record))
	r.setRecords = (*C.struct_intake_consumer_set_record)(C.calloc(C.size_t(capacity), C.sizeof_struct_intake_consumer_set_record))
	r.parsed = (*C.struct_go_record)(C.calloc(C.size_t(capacity), C.sizeof_struct_go_record))
	r.capacity = capacity
}

func bytesOf(field C.struct_intake_bytes) []byte {
	if field.bytes == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(field.bytes)), int(field.length))
}

func (r *reader) topicOf(record *C.struct_intake_consumer_set_record) string {
	index := uint32(record.topic_index)
	if name, ok := r.setTopics[index]; ok && name == C.GoString(record.topic) {
		return name
	}
	name := C.GoString(record.topic)
	r.setTopics[index] = name
	return name
}

func (r *reader) pollOnce(max int) ([]Record, error) {
	r.reserve(max)
	var count C.int
	if r.consumer != nil {
		count = C.intake_consumer_poll_batch(r.consumer, r.records, C.uint32_t(max))
	} else {
		count = C.intake_consumer_set_poll(r.set, r.setRecords, C.uint32_t(max))
		if count > 0 {
			C.go_set_records_split(r.setRecords, count, r.records)
		}
	}
	if count < 0 {
		return nil, newError(count, r.reason())
	}
	if count == 0 {
		return nil, nil
	}
	C.go_records_parse(r.records, count, r.parsed)
	records := unsafe.Slice(r.records, int(count))
	parsed := unsafe.Slice(r.parsed, int(count))
	setRecords := unsafe.Slice(r.setRecords, int(count))
	out := make([]Record, count)
	for index := range out {
		record := &out[index]
		record.record = records[index]
		record.owner = r
		record.Topic = r.topic
		if r.set != nil {
			record.Topic = r.topicOf(&setRecords[index])
			record.index = uint32(setRecords[index].topic_index)
		}
		record.Offset = uint64(records[index].offset)
		record.ReceiveTimeNs = uint64(records[index].receive_time_ns)
		record.Missed = uint64(records[index].missed)
		record.Raw = unsafe.Slice((*byte)(unsafe.Pointer(records[index].bytes)), int(records[index].length))
		view := &parsed[index].view
		if parsed[index].parsed == 0 {
			record.Problem = C.GoString(view.problem)
			continue
		}
		record.Key = bytesOf(view.key)
		record.Value = bytesOf(view.value)
		record.ProducerID = bytesOf(view.producer_id)
		record.TimestampNs = uint64(view.timestamp_ns)
		record.Sequence = uint64(view.sequence)
		if view.header_count > 0 {
			record.Headers = make([]Header, 0, int(view.header_count))
			var iterator C.struct_intake_record_header_iterator
			var header C.struct_intake_record_header
			C.intake_record_headers(view, &iterator)
			for C.intake_record_header_next(&iterator, &header) == 1 {
				record.Headers = append(record.Headers,
					Header{string(bytesOf(header.key)), bytesOf(header.value)})
			}
		}
	}
	return out, nil
}

func (r *reader) wait(timeout time.Duration) (bool, error) {
	nanoseconds := C.uint64_t(^uint64(0))
	if timeout >= 0 {
		nanoseconds = C.uint64_t(timeout.Nanoseconds())
	}
	var code C.int
	if r.consumer != nil {
		code = C.intake_consumer_wait(r.consumer, nanoseconds)
	} else {
		code = C.intake_consumer_set_wait(r.set, nanoseconds)
	}
	if code < 0 && code != -C.EINTR {
		return false, newError(code, r.reason())
	}
	return code == 1, nil
}

// Poll returns up to max records (1024 when max <= 0). With timeout 0 it returns at once
// (possibly none); otherwise it waits up to timeout for at least one (a negative timeout
// waits without limit). The records' bytes are valid until the next Poll or Close.
func (r *reader) Poll(max int, timeout time.Duration) ([]Record, error) {
	if max <= 0 {
		max = 1024
	}
	r.mutex.Lock()
	defer r.mutex.Unlock()
	if r.consumer == nil && r.set == nil {
		return nil, errClosed
	}
	deadline := time.Now().Add(timeout)
	for {
		records, err := r.pollOnce(max)
		if err != nil || len(records) > 0 || timeout == 0 {
			return records, err
		}
		remaining := time.Duration(-1)
		if timeout > 0 {
			remaining = time.Until(deadline)
			if remaining <= 0 {
				return nil, nil
			}
		}
		if _, err := r.wait(remaining); err != nil {
			return nil, err
		}
	}
}

// Commit records the cursor after the last record polled: a consumer opened later under the
// same Name with StartCommitted resumes there.
func (r *reader) Commit() error {
	r.mutex.Lock()
	defer r.mutex.Unlock()
	switch {
	case r.consumer != nil:
		C.intake_consumer_commit(r.consumer)
	case r.set != nil:
		C.intake_consumer_set_commit(r.set)
	default:
		return errClosed
	}
	return nil
}

// Missed is the number of records lost so far (overwrite retention lapped the consumer).
func (r *reader) Missed() uint64 {
	r.mutex.Lock()
	defer r.mutex.Unlock()
	if r.consumer != nil {
		return uint64(C.intake_consumer_missed_total(r.consumer))
	}
	if r.set != nil {
		var stats C.struct_intake_consumer_set_stats
		stats.struct_bytes = C.sizeof_struct_intake_consumer_set_stats
		C.intake_consumer_set_stats(r.set, &stats)
		return uint64(stats.missed_total)
	}
	return 0
}

// Close unregisters (anonymous) or detaches keeping the cursor, and unmaps the log: the
// records' slices must not be used afterwards.
func (r *reader) Close() error {
	r.mutex.Lock()
	defer r.mutex.Unlock()
	C.intake_consumer_close(r.consumer)
	C.intake_consumer_set_close(r.set)
	r.consumer, r.set = nil, nil
	C.free(unsafe.Pointer(r.records))
	C.free(unsafe.Pointer(r.setRecords))
	C.free(unsafe.Pointer(r.parsed))
	r.records, r.setRecords, r.parsed, r.capacity = nil, nil, nil, 0
	return nil
}
