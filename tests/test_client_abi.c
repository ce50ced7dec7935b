/*
 * test_client_abi.c: libintake's contract with programs in other languages (issue 19):
 *   - intake_record_parse: fields and headers as views into the caller's bytes, the last
 *     occurrence winning, unknown fields skipped, malformed records refused with the wire scan's
 *     own detail; random records with headers against what was encoded;
 *   - structs that grow: struct_bytes smaller, equal, larger (zero and non-zero tail), and no
 *     byte written past the caller's size;
 *   - misuse returns -EINVAL (never aborts); each TLS field is read where the header puts it
 *     (set alone: a missing CA file, or a field without tls_ca_file, is named);
 *   - a wait with a timeout of UINT64_MAX waits (it does not overflow into "already passed");
 *   - SIGBUS: the handler has SA_ONSTACK, chains to the one before it, and a host that owns
 *     SIGBUS hands our faults to intake_sigbus_handle (in child processes, each fresh);
 *   - headers sent with intake_producer_send_record through a real intaked, read back.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon_util.h"
#include "harness.h"
#include "intake/consumer.h"
#include "intake/producer.h"
#include "intake/shm_log_format.h"
#include "intake/version.h"
#include "record_scan.h"
#include "shm_test_util.h"
#include "record_encoder.h"
#include "varint.h"

/* ------------------------------------------------------- a small encoder --- */

/* Records are written with tests/record_encoder.h into buffers of this size. */
#define ENCODED_BYTES_MAX 8192

static bool bytes_equal(struct intake_bytes field, const void *bytes, size_t length) {
    if (length == 0) return field.length == 0;
    return field.length == length && memcmp(field.bytes, bytes, length) == 0;
}

/* The field points into `record` (no copy). */
static bool inside(struct intake_bytes field, const struct record_encoder *record) {
    return field.bytes == NULL || (field.bytes >= record->bytes &&
                                   field.bytes + field.length <= record->bytes + record->length);
}

/* ------------------------------------------------------- record parsing --- */

static void test_parse_vectors(void) {
    uint8_t record_bytes[ENCODED_BYTES_MAX];
    struct record_encoder record = RECORD_ENCODER(record_bytes);
    /* Unknown fields of every wire type, then topic twice (the last wins), value, key, a
     * header with only a key, one with both, the timestamp and sequence, a producer_id. */
    record_encoder_uint(&record, 9, 300);
    record_encoder_tag(&record, 10, 1);
    record_encoder_raw(&record, "12345678", 8);
    record_encoder_tag(&record, 11, 5);
    record_encoder_raw(&record, "1234", 4);
    record_encoder_bytes(&record, 12, "unknown", 7);
    record_encoder_bytes(&record, 1, "first", 5);
    record_encoder_bytes(&record, 3, "the value", 9);
    record_encoder_bytes(&record, 1, "topic", 5);
    record_encoder_bytes(&record, 2, "key", 3);
    uint8_t header_bytes[ENCODED_BYTES_MAX];
    struct record_encoder header = RECORD_ENCODER(header_bytes);
    record_encoder_bytes(&header, 1, "only-key", 8);
    record_encoder_bytes(&record, 6, header.bytes, header.length);
    header.length = 0;
    record_encoder_bytes(&header, 2, "v1", 2);
    record_encoder_bytes(&header, 1, "h1", 2);
    record_encoder_bytes(&header, 9, "x", 1); /* unknown inside a header */
    record_encoder_bytes(&record, 6, header.bytes, header.length);
    record_encoder_uint(&record, 4, 1234567890123ull);
    record_encoder_uint(&record, 5, 42);
    record_encoder_bytes(&record, 7, "producer-1", 10);

    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    CHECK(intake_record_parse(record.bytes, record.length, &view) == 0);
    CHECK(view.problem == NULL);
    CHECK(bytes_equal(view.topic, "topic", 5));
    CHECK(bytes_equal(view.key, "key", 3));
    CHECK(bytes_equal(view.value, "the value", 9));
    CHECK(bytes_equal(view.producer_id, "producer-1", 10));
    CHECK(view.timestamp_ns == 1234567890123ull);
    CHECK(view.sequence == 42);
    CHECK(view.header_count == 2);
    CHECK(inside(view.topic, &record) && inside(view.key, &record) && inside(view.value, &record));
    struct intake_record_header_iterator iterator;
    struct intake_record_header found;
    intake_record_headers(&view, &iterator);
    CHECK(intake_record_header_next(&iterator, &found) == 1);
    CHECK(bytes_equal(found.key, "only-key", 8) && found.value.length == 0);
    CHECK(found.value.bytes == NULL);
    CHECK(intake_record_header_next(&iterator, &found) == 1);
    CHECK(bytes_equal(found.key, "h1", 2) && bytes_equal(found.value, "v1", 2));
    CHECK(inside(found.key, &record) && inside(found.value, &record));
    CHECK(intake_record_header_next(&iterator, &found) == 0);
    CHECK(intake_record_header_next(&iterator, &found) == 0);

    /* Absent key, value and producer_id are NULL views; no headers iterate as none. */
    uint8_t bare_bytes[ENCODED_BYTES_MAX];
    struct record_encoder bare = RECORD_ENCODER(bare_bytes);
    record_encoder_bytes(&bare, 1, "t", 1);
    CHECK(intake_record_parse(bare.bytes, bare.length, &view) == 0);
    CHECK(view.key.bytes == NULL && view.key.length == 0 && view.value.bytes == NULL);
    CHECK(view.producer_id.bytes == NULL && view.header_count == 0 && view.sequence == 0);
    intake_record_headers(&view, &iterator);
    CHECK(intake_record_header_next(&iterator, &found) == 0);
}

/* Malformed records are refused with exactly the detail the daemon's scan gives. */
static void test_parse_malformed(void) {
    static const struct {
        uint8_t bytes[16];
        size_t length;
    } cases[] = {
        {{0x12, 0x01, 'k'}, 3},                               /* no topic */
        {{0x0a, 0x00}, 2},                                    /* empty topic */
        {{0x0a, 0x02, 0xc3, 0x28}, 4},                        /* topic not UTF-8 */
        {{0x0a, 0x05, 't'}, 3},                               /* length past the end */
        {{0x0a, 0x01, 't', 0x1b}, 4},                         /* a group */
        {{0x0a, 0x01, 't', 0x20}, 4},                         /* ends inside a varint field */
        {{0x0a, 0x01, 't', 0x32, 0x02, 0x0a, 0x05}, 7},       /* header runs past its end */
        {{0x0a, 0x01, 't', 0x32, 0x03, 0x0a, 0x01, 0xff}, 8}, /* header key not UTF-8 */
        {{0x82, 0x01, 0x01, 'p'}, 4},                         /* a Hello */
        {{0x0a, 0x01, 't', 0x3a, 0x01, 'p'}, 6},              /* producer_id without a sequence */
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(cases); index++) {
        struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
        CHECK(intake_record_parse(cases[index].bytes, cases[index].length, &view) == -EBADMSG);
        REQUIRE(view.problem != NULL);
        struct slice slice = {cases[index].bytes, (uint32_t)cases[index].length, 0};
        struct record_view wire = {&slice, 1, (uint32_t)cases[index].length};
        struct record_scan scan;
        if (record_scan_view(&wire, &scan) == RECORD_SCAN_MALFORMED) {
            if (strcmp(view.problem, scan.detail) != 0)
                fprintf(stderr, "case %zu: parse says \"%s\", the scan \"%s\"\n", index,
                        view.problem, scan.detail);
            CHECK(strcmp(view.problem, scan.detail) == 0);
        } else {
            CHECK(scan.is_hello); /* the scan takes a Hello; a record view refuses it */
            CHECK(strstr(view.problem, "Hello") != NULL);
        }
    }
    /* Misuse. */
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    CHECK(intake_record_parse(NULL, 3, &view) == -EINVAL);
    CHECK(intake_record_parse("x", 1, NULL) == -EINVAL);
    CHECK(intake_record_header_next(NULL, NULL) == -EINVAL);
    intake_record_headers(NULL, NULL); /* ignored, no crash */
}

/* Random records: fields in random order, repeated, with unknown fields and headers. */
static void test_parse_random(void) {
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 2000; round++) {
        uint8_t record_bytes[ENCODED_BYTES_MAX];
        struct record_encoder record = RECORD_ENCODER(record_bytes);
        uint8_t key[40], value[300], header_keys[6][8], header_values[6][20];
        size_t key_length = test_random_next(&state) % sizeof(key);
        size_t value_length = test_random_next(&state) % sizeof(value);
        for (size_t index = 0; index < sizeof(key); index++)
            key[index] = (uint8_t)test_random_next(&state);
        for (size_t index = 0; index < sizeof(value); index++)
            value[index] = (uint8_t)test_random_next(&state);
        uint32_t header_count = (uint32_t)(test_random_next(&state) % 7);
        size_t header_key_lengths[6], header_value_lengths[6];
        /* A stale key and value first: the later ones win. */
        if (test_random_next(&state) & 1) record_encoder_bytes(&record, 2, "stale", 5);
        record_encoder_bytes(&record, 1, "random-topic", 12);
        if (test_random_next(&state) & 1) record_encoder_bytes(&record, 3, "stale", 5);
        for (uint32_t header = 0; header < header_count; header++) {
            header_key_lengths[header] = test_random_next(&state) % 8;
            header_value_lengths[header] = test_random_next(&state) % 20;
            for (size_t index = 0; index < 8; index++)
                header_keys[header][index] = (uint8_t)('a' + test_random_next(&state) % 26);
            for (size_t index = 0; index < 20; index++)
                header_values[header][index] = (uint8_t)test_random_next(&state);
            uint8_t body_bytes[ENCODED_BYTES_MAX];
            struct record_encoder body = RECORD_ENCODER(body_bytes);
            if (header_key_lengths[header] > 0)
                record_encoder_bytes(&body, 1, header_keys[header], header_key_lengths[header]);
            if (header_value_lengths[header] > 0)
                record_encoder_bytes(&body, 2, header_values[header], header_value_lengths[header]);
            record_encoder_bytes(&record, 6, body.bytes, body.length);
            if (test_random_next(&state) % 3 == 0) record_encoder_uint(&record, 100, header);
        }
        if (key_length > 0) record_encoder_bytes(&record, 2, key, key_length);
        if (value_length > 0) record_encoder_bytes(&record, 3, value, value_length);
        uint64_t sequence = test_random_next(&state) >> (test_random_next(&state) % 64);
        record_encoder_uint(&record, 5, sequence);

        struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
        REQUIRE(intake_record_parse(record.bytes, record.length, &view) == 0);
        CHECK(bytes_equal(view.topic, "random-topic", 12));
        CHECK(key_length == 0 ? view.key.length == 0 || bytes_equal(view.key, "stale", 5)
                              : bytes_equal(view.key, key, key_length));
        CHECK(value_length == 0 ? view.value.length == 0 || bytes_equal(view.value, "stale", 5)
                                : bytes_equal(view.value, value, value_length));
        CHECK(view.sequence == sequence);
        CHECK(view.header_count == header_count);
        struct intake_record_header_iterator iterator;
        struct intake_record_header found;
        intake_record_headers(&view, &iterator);
        for (uint32_t header = 0; header < header_count; header++) {
            REQUIRE(intake_record_header_next(&iterator, &found) == 1);
            CHECK(bytes_equal(found.key, header_keys[header], header_key_lengths[header]));
            CHECK(bytes_equal(found.value, header_values[header], header_value_lengths[header]));
        }
        CHECK(intake_record_header_next(&iterator, &found) == 0);
    }
}

/* --------------------------------------------------------- growing structs --- */

static void test_struct_bytes(void) {
    uint8_t record_bytes[ENCODED_BYTES_MAX];
    struct record_encoder record = RECORD_ENCODER(record_bytes);
    record_encoder_bytes(&record, 1, "t", 1);
    record_encoder_bytes(&record, 3, "v", 1);
    /* A newer caller's view: longer than ours. The library writes its own fields, not past. */
    struct {
        struct intake_record_view view;
        uint8_t newer[32];
    } larger;
    memset(&larger, 0xab, sizeof(larger));
    larger.view.struct_bytes = sizeof(larger);
    CHECK(intake_record_parse(record.bytes, record.length, &larger.view) == 0);
    CHECK(larger.view.struct_bytes == sizeof(larger));
    CHECK(bytes_equal(larger.view.value, "v", 1));
    bool untouched = true;
    for (size_t index = 0; index < sizeof(larger.newer); index++)
        untouched = untouched && larger.newer[index] == 0xab;
    CHECK(untouched);
    /* 0 means 1.0's layout; below it is misuse. */
    struct intake_record_view view;
    memset(&view, 0, sizeof(view));
    CHECK(intake_record_parse(record.bytes, record.length, &view) == 0);
    CHECK(view.struct_bytes == 0 && bytes_equal(view.topic, "t", 1));
    view.struct_bytes = 8;
    CHECK(intake_record_parse(record.bytes, record.length, &view) == -EINVAL);

    /* Options from a newer caller: zero bytes past ours are accepted, others refused. */
    struct {
        struct intake_consumer_options options;
        uint64_t newer_field;
    } newer;
    memset(&newer, 0, sizeof(newer));
    newer.options.struct_bytes = sizeof(newer);
    newer.options.start = INTAKE_CONSUMER_START_OLDEST;
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result = intake_consumer_open("/nonexistent-intake-dir", "t", "abi", &newer.options,
                                      &consumer, why, sizeof(why));
    CHECK(result == -ENOENT); /* the options passed; the log is not there */
    newer.newer_field = 7;
    result = intake_consumer_open("/nonexistent-intake-dir", "t", "abi", &newer.options, &consumer,
                                  why, sizeof(why));
    CHECK(result == -EINVAL);
    CHECK(strstr(why, "does not know") != NULL);
    struct intake_consumer_options short_options = {.struct_bytes = 4};
    CHECK(intake_consumer_open("/tmp", "t", "abi", &short_options, &consumer, why, sizeof(why)) ==
          -EINVAL);
    CHECK(consumer == NULL);
}

/* ----------------------------------------------------------------- misuse --- */

static void test_misuse(void) {
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    struct intake_consumer *consumer = NULL;
    CHECK(intake_consumer_open(NULL, "t", "n", NULL, &consumer, why, sizeof(why)) == -EINVAL);
    CHECK(why[0] != '\0');
    CHECK(intake_consumer_open("/tmp", "t", "n", NULL, NULL, why, sizeof(why)) == -EINVAL);
    struct intake_consumer_options bad_start = {.start = (enum intake_consumer_start)9};
    CHECK(intake_consumer_open("/tmp", "t", "n", &bad_start, &consumer, why, sizeof(why)) ==
          -EINVAL);
    CHECK(strstr(why, "start") != NULL);
    struct intake_consumer_record record;
    CHECK(intake_consumer_poll(NULL, &record) == -EINVAL);
    CHECK(intake_consumer_poll_batch(NULL, &record, 1) == -EINVAL);
    CHECK(intake_consumer_wait(NULL, 1) == -EINVAL);
    CHECK(!intake_consumer_record_valid(NULL, &record));
    CHECK(!intake_consumer_writer_alive(NULL));
    CHECK(intake_consumer_missed_total(NULL) == 0);
    CHECK(strlen(intake_consumer_error(NULL)) > 0);
    intake_consumer_commit(NULL);
    intake_consumer_close(NULL);
    struct intake_consumer_set *set = NULL;
    CHECK(intake_consumer_set_open("/tmp", "n", NULL, &set, why, sizeof(why)) == -EINVAL);
    struct intake_consumer_set_options set_options = INTAKE_CONSUMER_SET_OPTIONS_INIT;
    set_options.topics_max = 0;
    CHECK(intake_consumer_set_open("/tmp", "n", &set_options, &set, why, sizeof(why)) == -EINVAL);
    CHECK(intake_consumer_set_poll(NULL, NULL, 1) == -EINVAL);
    CHECK(intake_consumer_set_wait(NULL, 1) == -EINVAL);
    intake_consumer_set_commit(NULL);
    intake_consumer_set_close(NULL);

    struct intake_producer *producer = NULL;
    CHECK(intake_producer_open(NULL, &producer, why, sizeof(why)) == -EINVAL);
    struct intake_producer_config config = INTAKE_PRODUCER_CONFIG_INIT;
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -EINVAL); /* address */
    config.address = "127.0.0.1:1";
    config.producer_id = NULL;
    config.producer_id_length = 5;
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -EINVAL);
    CHECK(intake_producer_send(NULL, "t", NULL, 0, NULL, 0, 0, NULL) == -EINVAL);
    CHECK(intake_producer_flush(NULL) == -EINVAL);
    CHECK(intake_producer_wait_acks(NULL, 1, 1) == -EINVAL);
    CHECK(intake_producer_poll(NULL, 0) == -EINVAL);
    CHECK(intake_producer_acked(NULL) == 0);
    intake_producer_close(NULL);

    /* An idempotent producer opens while nothing listens (it connects later): then check
     * what send_record refuses. */
    config.producer_id = NULL;
    config.producer_id_length = 0;
    config.idempotent = true;
    config.nonblocking = true;
    REQUIRE(intake_producer_open(&config, &producer, why, sizeof(why)) == 0);
    struct intake_producer_header headers[2] = {{"ok", 2, "v", 1}, {"\xc3\x28", 2, NULL, 0}};
    struct intake_producer_record message = INTAKE_PRODUCER_RECORD_INIT;
    message.topic = "t";
    message.headers = headers;
    message.header_count = 2;
    CHECK(intake_producer_send_record(producer, &message, NULL) == -EINVAL);
    CHECK(strstr(intake_producer_last_error(producer), "header 1: key is not valid UTF-8"));
    message.headers = NULL;
    CHECK(intake_producer_send_record(producer, &message, NULL) == -EINVAL);
    message.headers = headers;
    message.header_count = INTAKE_PRODUCER_HEADERS_MAX + 1;
    CHECK(intake_producer_send_record(producer, &message, NULL) == -EINVAL);
    message.header_count = 1;
    message.value_length = 3; /* without its bytes */
    CHECK(intake_producer_send_record(producer, &message, NULL) == -EINVAL);
    message.value_length = 0;
    uint64_t sequence = 0;
    CHECK(intake_producer_send_record(producer, &message, &sequence) == 0);
    CHECK(sequence == 1);
    CHECK(intake_producer_send_record(producer, NULL, NULL) == -EINVAL);
    CHECK(intake_producer_send_raw(producer, NULL, 4, NULL) == -EINVAL);
    struct intake_producer_stats stats = {.struct_bytes = sizeof(stats)};
    intake_producer_stats(producer, &stats);
    CHECK(stats.pending == 1 && stats.struct_bytes == sizeof(stats));
    intake_producer_close(producer);
}

/* Each TLS field is read where the header puts it: set alone, each makes open fail naming
 * itself (a missing CA file; the other three without tls_ca_file). test_producer_tls covers
 * what TLS does. */
static void test_tls_fields_read(void) {
    static const char *const *fields[4];
    struct intake_producer_config config = INTAKE_PRODUCER_CONFIG_INIT;
    config.address = "127.0.0.1:1";
    fields[0] = &config.tls_ca_file;
    fields[1] = &config.tls_cert_file;
    fields[2] = &config.tls_key_file;
    fields[3] = &config.tls_server_name;
    static const char *const expected[4] = {"tls_ca_file /nonexistent/ca.pem: No such file",
                                            "TLS needs tls_ca_file", "TLS needs tls_ca_file",
                                            "TLS needs tls_ca_file"};
    for (int index = 0; index < 4; index++) {
        config.tls_ca_file = config.tls_cert_file = config.tls_key_file = NULL;
        config.tls_server_name = NULL;
        *(const char **)fields[index] = "/nonexistent/ca.pem";
        struct intake_producer *producer = (struct intake_producer *)1;
        char why[256];
        CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) ==
              (index == 0 ? -ENOENT : -EINVAL));
        CHECK(producer == NULL);
        CHECK(strstr(why, expected[index]) != NULL);
    }
}

/* ------------------------------------------------------------ saturation --- */

struct waiter {
    struct intake_consumer *consumer;
    atomic_int result;
    atomic_bool done;
};

static void *waiter_run(void *argument) {
    struct waiter *waiter = argument;
    atomic_store(&waiter->result, intake_consumer_wait(waiter->consumer, UINT64_MAX));
    atomic_store(&waiter->done, true);
    return NULL;
}

static void test_wait_saturates(void) {
    struct shm_log *log = NULL;
    char why[512];
    REQUIRE(shm_test_writer_open("saturate", &log, why, sizeof(why)) == 0);
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_END,
                                              .ephemeral = true};
    struct waiter waiter = {.result = -100};
    REQUIRE(intake_consumer_open(test_directory, "saturate", "waiter", &options, &waiter.consumer,
                                 why, sizeof(why)) == 0);
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, waiter_run, &waiter) == 0);
    /* The waiter is asleep once it has flagged readers_waiting; if now + UINT64_MAX wrapped,
     * it returns 0 at once instead. Look (bounded) for either. */
    char path[600];
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_consumers_file_name("saturate", name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    struct shm_log_consumers *region =
        mmap(NULL, SHM_LOG_CONSUMERS_FILE_BYTES, PROT_READ, MAP_SHARED, fd, 0);
    REQUIRE(region != MAP_FAILED);
    for (int step = 0;
         step < 5000 && !atomic_load(&waiter.done) && atomic_load(&region->readers_waiting) == 0;
         step++) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    CHECK(!atomic_load(&waiter.done));
    uint8_t buffer[2048];
    uint64_t assigned = 0;
    REQUIRE(pattern_append(log, 0, 1000, buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(log));
    pthread_join(thread, NULL);
    CHECK(atomic_load(&waiter.result) == 1);
    munmap(region, SHM_LOG_CONSUMERS_FILE_BYTES);
    close(fd);
    intake_consumer_close(waiter.consumer);
    shm_log_close(log);
}

/* ----------------------------------------------------------------- SIGBUS --- */

static sigjmp_buf host_jump;
static volatile sig_atomic_t host_faults_own, host_faults_ours;

/* A host's handler: hands the fault to the library first, else takes it itself. */
static void host_handler(int signal_number, siginfo_t *info, void *context) {
    if (intake_sigbus_handle(signal_number, info, context)) {
        host_faults_ours++;
        return;
    }
    host_faults_own++;
    siglongjmp(host_jump, 1);
}

static void host_handler_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = host_handler;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, NULL);
}

/* A mapping of a one-page file that is then truncated: touching it raises SIGBUS. */
static volatile uint8_t *foreign_mapping(const char *name) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0) return NULL;
    void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED || ftruncate(fd, 0) != 0) return NULL;
    close(fd);
    return map;
}

/* Opens a consumer on a fresh log of topic `topic` (the writer in this process). */
static struct intake_consumer *guarded_consumer(const char *topic, struct shm_log **log) {
    char why[512];
    if (shm_test_writer_open(topic, log, why, sizeof(why)) != 0) return NULL;
    uint8_t buffer[2048];
    uint64_t assigned;
    for (uint64_t offset = 0; offset < 5; offset++)
        if (pattern_append(*log, offset, 1000, buffer, &assigned) != SHM_LOG_APPENDED) return NULL;
    if (!shm_log_publish(*log)) return NULL;
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(test_directory, topic, "guarded", &options, &consumer, why,
                             sizeof(why)) != 0)
        return NULL;
    return consumer;
}

static int truncate_log(const char *topic) {
    char path[600], name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    return truncate(path, 0);
}

/* Library mode: SA_ONSTACK, our faults become -EIO, others go to the handler before ours. */
static int child_library_mode(void *unused) {
    (void)unused;
    host_handler_install(); /* here before the library's: it must be chained to */
    struct shm_log *log = NULL;
    struct intake_consumer *consumer = guarded_consumer("library-mode", &log);
    if (consumer == NULL) return 10;
    struct sigaction current;
    sigaction(SIGBUS, NULL, &current);
    if (!(current.sa_flags & SA_ONSTACK) || !(current.sa_flags & SA_SIGINFO)) return 11;
    if (current.sa_sigaction == host_handler) return 12; /* ours should be installed */
    if (intake_sigbus_set_mode(INTAKE_SIGBUS_HOST) != -EBUSY) return 13;
    if (truncate_log("library-mode") != 0) return 14;
    struct intake_consumer_record record;
    int polled = intake_consumer_poll(consumer, &record);
    if (polled != -EIO) return 15;
    if (strstr(intake_consumer_error(consumer), "truncated") == NULL) return 16;
    volatile uint8_t *foreign = foreign_mapping("foreign-library");
    if (foreign == NULL) return 17;
    if (sigsetjmp(host_jump, 1) == 0) {
        (void)foreign[0];
        return 18; /* no fault at all */
    }
    if (host_faults_own != 1 || host_faults_ours != 0) return 19;
    intake_consumer_close(consumer);
    shm_log_close(log);
    return 0;
}

/* Host mode: nothing installed; the host's handler hands our faults to intake_sigbus_handle. */
static int child_host_mode(void *unused) {
    (void)unused;
    if (intake_sigbus_set_mode((enum intake_sigbus_mode)7) != -EINVAL) return 20;
    if (intake_sigbus_set_mode(INTAKE_SIGBUS_HOST) != 0) return 21;
    host_handler_install();
    struct shm_log *log = NULL;
    struct intake_consumer *consumer = guarded_consumer("host-mode", &log);
    if (consumer == NULL) return 22;
    struct sigaction current;
    sigaction(SIGBUS, NULL, &current);
    if (current.sa_sigaction != host_handler) return 23; /* the library installed nothing */
    if (truncate_log("host-mode") != 0) return 24;
    struct intake_consumer_record record;
    if (intake_consumer_poll(consumer, &record) != -EIO) return 25;
    if (host_faults_ours < 1 || host_faults_own != 0) return 26;
    volatile uint8_t *foreign = foreign_mapping("foreign-host");
    if (foreign == NULL) return 27;
    if (sigsetjmp(host_jump, 1) == 0) {
        (void)foreign[0];
        return 28;
    }
    if (host_faults_own != 1) return 29;
    intake_consumer_close(consumer);
    shm_log_close(log);
    return 0;
}

static void test_sigbus(void) {
    int code = child_finish(child_start(child_library_mode, NULL));
    if (code != 0) fprintf(stderr, "library mode child: exit %d\n", code);
    CHECK(code == 0);
    code = child_finish(child_start(child_host_mode, NULL));
    if (code != 0) fprintf(stderr, "host mode child: exit %d\n", code);
    CHECK(code == 0);
}

/* -------------------------------------------- headers through a real daemon --- */

static void test_headers_end_to_end(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "abi");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, NULL));
    struct intake_producer_config config = INTAKE_PRODUCER_CONFIG_INIT;
    config.address = daemon.address;
    config.acks = true;
    struct intake_producer *producer = NULL;
    char why[512];
    REQUIRE(intake_producer_open(&config, &producer, why, sizeof(why)) == 0);
    struct intake_producer_header headers[3] = {
        {"trace-id", 8, "abc", 3}, {"empty", 5, NULL, 0}, {"", 0, "\0\1\2", 3}};
    uint64_t sequence = 0;
    for (uint32_t count = 0; count <= 3; count++) {
        struct intake_producer_record record = INTAKE_PRODUCER_RECORD_INIT;
        record.topic = "abi-headers";
        record.key = "k";
        record.key_length = 1;
        record.value = "value";
        record.value_length = 5;
        record.headers = headers;
        record.header_count = count;
        record.timestamp_ns = 1000 + count;
        CHECK(intake_producer_send_record(producer, &record, &sequence) == 0);
    }
    CHECK(intake_producer_wait_acks(producer, sequence, 10000) == 0);
    intake_producer_close(producer);

    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    REQUIRE(intake_consumer_open(directory, "abi-headers", "abi", &options, &consumer, why,
                                 sizeof(why)) == 0);
    struct intake_consumer_record records[8];
    int count = intake_consumer_poll_batch(consumer, records, 8);
    CHECK(count == 4);
    for (int index = 0; index < count; index++) {
        struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
        REQUIRE(intake_record_parse(records[index].bytes, records[index].length, &view) == 0);
        CHECK(bytes_equal(view.topic, "abi-headers", 11));
        CHECK(bytes_equal(view.key, "k", 1) && bytes_equal(view.value, "value", 5));
        CHECK(view.timestamp_ns == 1000u + (uint64_t)index);
        CHECK(view.header_count == (uint32_t)index);
        struct intake_record_header_iterator iterator;
        struct intake_record_header found;
        intake_record_headers(&view, &iterator);
        for (int header = 0; header < index; header++) {
            REQUIRE(intake_record_header_next(&iterator, &found) == 1);
            CHECK(bytes_equal(found.key, headers[header].key, headers[header].key_length));
            CHECK(bytes_equal(found.value, headers[header].value, headers[header].value_length));
        }
        CHECK(intake_record_header_next(&iterator, &found) == 0);
    }
    intake_consumer_close(consumer);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

int main(void) {
    test_directory_make("abi");
    REQUIRE(mkdir(test_directory, 0700) == 0);
    CHECK(strcmp(intake_version(), INTAKE_VERSION_STRING) == 0);
    CHECK(intake_version_number() == INTAKE_VERSION_NUMBER);
    /* First: each child must start with no SIGBUS handler of ours (nothing mapped yet). */
    test_sigbus();
    test_parse_vectors();
    test_parse_malformed();
    test_parse_random();
    test_struct_bytes();
    test_misuse();
    test_tls_fields_read();
    test_wait_saturates();
    test_headers_end_to_end();
    return test_finish();
}
