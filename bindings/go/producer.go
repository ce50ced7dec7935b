package intake

/*
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <intake/producer.h>

// Failed records reported by the library's delivery callback, kept in C memory for Flush.
struct go_failure {
    unsigned long long sequence;
    int status;
    char topic[INTAKE_PRODUCER_TOPIC_BYTES_MAX + 1];
    char detail[256];
};

struct go_failures {
    struct go_failure *items;
    size_t count, capacity;
    unsigned long long not_kept;
};

static void go_on_delivery(void *context, const struct intake_producer_delivery *report) {
    struct go_failures *failures = context;
    if (report->status == INTAKE_DELIVERY_OK) return;
    if (failures->count == failures->capacity) {
        size_t capacity = failures->capacity ? failures->capacity * 2 : 16;
        void *grown = capacity <= 65536 ? realloc(failures->items, capacity * sizeof(struct go_failure)) : NULL;
        if (grown == NULL) {
            failures->not_kept++;
            return;
        }
        failures->items = grown;
        failures->capacity = capacity;
    }
    struct go_failure *failure = &failures->items[failures->count++];
    failure->sequence = report->sequence;
    failure->status = (int)report->status;
    size_t length = report->topic_length < INTAKE_PRODUCER_TOPIC_BYTES_MAX
                        ? report->topic_length : INTAKE_PRODUCER_TOPIC_BYTES_MAX;
    memcpy(failure->topic, report->topic, length);
    failure->topic[length] = '\0';
    strncpy(failure->detail, report->detail, sizeof(failure->detail) - 1);
    failure->detail[sizeof(failure->detail) - 1] = '\0';
}

static int go_producer_open(const char *address, const void *id, size_t id_length, int acks,
                            int idempotent, const char *tls_ca, const char *tls_cert,
                            const char *tls_key, const char *tls_server_name,
                            struct go_failures *failures, struct intake_producer **out, char *why,
                            size_t why_capacity) {
    struct intake_producer_config config = INTAKE_PRODUCER_CONFIG_INIT;
    config.address = address;
    config.producer_id = id;
    config.producer_id_length = id_length;
    config.acks = acks != 0;
    config.idempotent = idempotent != 0;
    config.tls_ca_file = tls_ca;
    config.tls_cert_file = tls_cert;
    config.tls_key_file = tls_key;
    config.tls_server_name = tls_server_name;
    config.on_delivery = go_on_delivery;
    config.delivery_context = failures;
    return intake_producer_open(&config, out, why, why_capacity);
}

// Key and value may be Go memory (arguments of this call); the headers are in C memory.
static int go_producer_send(struct intake_producer *producer, const char *topic, const void *key,
                            size_t key_length, const void *value, size_t value_length,
                            const struct intake_producer_header *headers, unsigned header_count,
                            unsigned long long *sequence) {
    struct intake_producer_record record = INTAKE_PRODUCER_RECORD_INIT;
    record.topic = topic;
    record.key = key;
    record.key_length = key_length;
    record.value = value;
    record.value_length = value_length;
    record.headers = headers;
    record.header_count = header_count;
    uint64_t assigned = 0;
    int result = intake_producer_send_record(producer, &record, &assigned);
    *sequence = assigned;
    return result;
}

static struct go_failure *go_failure_at(struct go_failures *failures, size_t index) {
    return &failures->items[index];
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// ProducerOptions for NewProducer; the zero value is a plain producer with acks.
type ProducerOptions struct {
	// ProducerID makes the producer idempotent (1..64 bytes): exactly once into the logs
	// across reconnects and daemon restarts. Idempotent alone gives it a generated id.
	ProducerID string
	Idempotent bool
	// NoAcks sends without sequences; intake acknowledges nothing and Flush only writes.
	NoAcks bool
	// TLS 1.3 to intaked's --tls-listen port (PEM files): TLSCAFile verifies intaked's
	// certificate for TLSServerName (default: the address's host); TLSCertFile and TLSKeyFile
	// add a client certificate (mutual TLS). A failed handshake is an *Error with
	// ECONNABORTED saying what failed ("TLS" in include/intake/producer.h).
	TLSCAFile, TLSCertFile, TLSKeyFile, TLSServerName string
}

// Failure is one record intake did not commit.
type Failure struct {
	Sequence uint64
	Topic    string // "" where the producer cannot know it
	Status   string // REJECTED, INTERNAL, TIMED_OUT, ...
	Detail   string
}

// DeliveryError names the records a Flush found failed.
type DeliveryError struct {
	Failures []Failure
	NotKept  uint64 // failures beyond those kept (65,536)
}

func (e *DeliveryError) Error() string {
	if len(e.Failures) == 0 {
		return fmt.Sprintf("intake: %d records failed", e.NotKept)
	}
	first := e.Failures[0]
	return fmt.Sprintf("intake: %d record(s) failed, first: sequence %d (%s: %s)",
		uint64(len(e.Failures))+e.NotKept, first.Sequence, first.Status, first.Detail)
}

// Producer sends records to intaked. Its methods may be called from any goroutine (they
// serialize on a mutex).
type Producer struct {
	mutex      sync.Mutex
	producer   *C.struct_intake_producer
	failures   *C.struct_go_failures
	topics     map[string]*C.char
	headers    *C.struct_intake_producer_header
	headerRoom int
	scratch    unsafe.Pointer
	scratchCap int
	acks       bool
	idempotent bool
}

var statusNames = map[int]string{1: "REJECTED", 2: "RESOURCE_EXHAUSTED", 3: "SHUTTING_DOWN",
	4: "INTERNAL", 100: "TIMED_OUT"}

func optionalString(text string) *C.char {
	if text == "" {
		return nil
	}
	return C.CString(text)
}

// NewProducer connects to intaked at address ("127.0.0.1:7411"). opts may be nil.
func NewProducer(address string, opts *ProducerOptions) (*Producer, error) {
	if opts == nil {
		opts = &ProducerOptions{}
	}
	cAddress := C.CString(address)
	defer C.free(unsafe.Pointer(cAddress))
	strings := []*C.char{optionalString(opts.TLSCAFile), optionalString(opts.TLSCertFile),
		optionalString(opts.TLSKeyFile), optionalString(opts.TLSServerName)}
	defer func() {
		for _, text := range strings {
			C.free(unsafe.Pointer(text))
		}
	}()
	var id unsafe.Pointer
	if opts.ProducerID != "" {
		id = unsafe.Pointer(C.CString(opts.ProducerID))
		defer C.free(id)
	}
	producer := &Producer{topics: map[string]*C.char{}, acks: !opts.NoAcks,
		idempotent: opts.Idempotent || opts.ProducerID != ""}
	producer.failures = (*C.struct_go_failures)(C.calloc(1, C.sizeof_struct_go_failures))
	why := (*C.char)(C.malloc(512))
	defer C.free(unsafe.Pointer(why))
	code := C.go_producer_open(cAddress, id, C.size_t(len(opts.ProducerID)), C.int(boolInt(!opts.NoAcks)),
		C.int(boolInt(opts.Idempotent)), strings[0], strings[1], strings[2], strings[3],
		producer.failures, &producer.producer, why, 512)
	if code != 0 {
		C.free(unsafe.Pointer(producer.failures))
		return nil, newError(code, C.GoString(why))
	}
	return producer, nil
}

func boolInt(value bool) int {
	if value {
		return 1
	}
	return 0
}

// topicString is the topic as a C string, kept for the producer's life (a few topics, usually).
func (p *Producer) topicString(topic string) (*C.char, bool) {
	if cached, ok := p.topics[topic]; ok {
		return cached, true
	}
	text := C.CString(topic)
	if len(p.topics) < 1024 {
		p.topics[topic] = text
		return text, true
	}
	return text, false
}

// headersIn copies the headers into C memory (Go memory holding pointers may not go to C).
func (p *Producer) headersIn(headers []Header) *C.struct_intake_producer_header {
	if len(headers) == 0 {
		return nil
	}
	need := 0
	for _, header := range headers {
		need += len(header.Key) + len(header.Value)
	}
	if need > p.scratchCap {
		C.free(p.scratch)
		p.scratch, p.scratchCap = C.malloc(C.size_t(need+1)), need
	}
	if len(headers) > p.headerRoom {
		C.free(unsafe.Pointer(p.headers))
		p.headers = (*C.struct_intake_producer_header)(C.calloc(C.size_t(len(headers)),
			C.sizeof_struct_intake_producer_header))
		p.headerRoom = len(headers)
	}
	scratch := unsafe.Slice((*byte)(p.scratch), p.scratchCap+1)
	list := unsafe.Slice(p.headers, len(headers))
	used := 0
	for index, header := range headers {
		key := unsafe.Pointer(&scratch[used])
		used += copy(scratch[used:], header.Key)
		value := unsafe.Pointer(&scratch[used])
		used += copy(scratch[used:], header.Value)
		list[index] = C.struct_intake_producer_header{key: key, key_length: C.size_t(len(header.Key)),
			value: value, value_length: C.size_t(len(header.Value))}
	}
	return p.headers
}

func bytesPointer(data []byte) unsafe.Pointer {
	if len(data) == 0 {
		return nil
	}
	return unsafe.Pointer(&data[0])
}

// Send queues one record and returns its sequence (0 without acks). Key, value and headers
// are copied (or written) before it returns.
func (p *Producer) Send(topic string, key, value []byte, headers ...Header) (uint64, error) {
	p.mutex.Lock()
	defer p.mutex.Unlock()
	if p.producer == nil {
		return 0, errors.New("intake: the producer is closed")
	}
	cTopic, kept := p.topicString(topic)
	if !kept {
		defer C.free(unsafe.Pointer(cTopic))
	}
	var sequence C.ulonglong
	code := C.go_producer_send(p.producer, cTopic, bytesPointer(key), C.size_t(len(key)),
		bytesPointer(value), C.size_t(len(value)), p.headersIn(headers), C.unsigned(len(headers)),
		&sequence)
	if code != 0 {
		return 0, newError(code, C.GoString(C.intake_producer_last_error(p.producer)))
	}
	return uint64(sequence), nil
}

func (p *Producer) takeFailures() []Failure {
	count := int(p.failures.count)
	failures := make([]Failure, count)
	for index := range failures {
		failure := C.go_failure_at(p.failures, C.size_t(index))
		failures[index] = Failure{uint64(failure.sequence), C.GoString(&failure.topic[0]),
			statusNames[int(failure.status)], C.GoString(&failure.detail[0])}
	}
	p.failures.count = 0
	return failures
}

// Flush writes what is batched and, with acks, waits until every record sent is
// acknowledged (timeout < 0: no limit). It returns a *DeliveryError naming the records that
// failed, or an *Error (ETIMEDOUT when the acks did not come in time).
func (p *Producer) Flush(timeout time.Duration) error {
	p.mutex.Lock()
	defer p.mutex.Unlock()
	if p.producer == nil {
		return errors.New("intake: the producer is closed")
	}
	timeoutMs := -1
	if timeout >= 0 {
		timeoutMs = int(timeout.Milliseconds())
	}
	last := C.intake_producer_last_sequence(p.producer)
	code := C.intake_producer_flush(p.producer)
	if code == 0 && p.acks && last > 0 {
		code = C.intake_producer_wait_acks(p.producer, last, C.int(timeoutMs))
	}
	failures := p.takeFailures()
	notKept := uint64(p.failures.not_kept)
	p.failures.not_kept = 0
	reason := C.GoString(C.intake_producer_last_error(p.producer))
	if code == -C.EPROTO && !p.idempotent && len(failures) == 0 {
		// A plain connection ends at its first refused record: it and every one after it
		// were not committed.
		status := "REJECTED"
		for name := range map[string]bool{"REJECTED": true, "INTERNAL": true, "RESOURCE_EXHAUSTED": true, "SHUTTING_DOWN": true} {
			if len(reason) > len(name) && reason[:len(name)] == name {
				status = name
			}
		}
		for sequence := uint64(C.intake_producer_acked(p.producer)) + 1; sequence <= uint64(last); sequence++ {
			failures = append(failures, Failure{Sequence: sequence, Status: status, Detail: reason})
		}
	}
	if len(failures) > 0 || notKept > 0 {
		return &DeliveryError{Failures: failures, NotKept: notKept}
	}
	if code != 0 {
		return &Error{Errno: syscall.Errno(-code), Reason: reason}
	}
	return nil
}

// Close closes the connection (call Flush first: what is pending is dropped) and frees the
// producer.
func (p *Producer) Close() error {
	p.mutex.Lock()
	defer p.mutex.Unlock()
	if p.producer == nil {
		return nil
	}
	C.intake_producer_close(p.producer)
	p.producer = nil
	for _, text := range p.topics {
		C.free(unsafe.Pointer(text))
	}
	p.topics = nil
	C.free(unsafe.Pointer(p.failures.items))
	C.free(unsafe.Pointer(p.failures))
	C.free(unsafe.Pointer(p.headers))
	C.free(p.scratch)
	return nil
}
