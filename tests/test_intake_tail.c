/*
 * test_intake_tail.c: intake-tail against logs written with the writer API (src/shm_log.h):
 * json, text and raw output, --count, --from-offset, --from-end, --name resume, --follow
 * (woken by the futex), gap reporting, and the error line for a missing log.
 *
 * intake-test: no-tsan (single-threaded writer; the readers are separate processes)
 */
#include <fcntl.h>

#include "harness.h"
#include "shm_test_util.h"
#include "record_encoder.h"
#include "varint.h"

#define TOPIC "orders/eu"

/* Records are written with tests/record_encoder.h into one buffer of this size. */
#define RECORD_BYTES_MAX 4096

/* Record `index` of the test topic (sequence index + 1, timestamp 1000 + index). */
static void record_encode(struct record_encoder *encoder, uint64_t index) {
    encoder->length = 0;
    record_encoder_string(encoder, RECORD_FIELD_TOPIC, TOPIC);
    char key[32], value[32];
    snprintf(key, sizeof(key), "k%llu", (unsigned long long)index);
    snprintf(value, sizeof(value), "v%llu", (unsigned long long)index);
    if (index == 0) {
        record_encoder_bytes(encoder, RECORD_FIELD_KEY, "k0", 2);
        record_encoder_bytes(encoder, RECORD_FIELD_VALUE, "hello", 5);
        record_encoder_header(encoder, "h", 1, "v", 1);
    } else if (index == 1) {
        record_encoder_bytes(encoder, RECORD_FIELD_KEY, "\x00\xff", 2);
        record_encoder_bytes(encoder, RECORD_FIELD_VALUE, "quote\"back\\slash", 16);
    } else if (index == 2) {
        record_encoder_bytes(encoder, RECORD_FIELD_VALUE, "\x01\x02\x03", 3);
        record_encoder_header(encoder, "a", 1, "1", 1);
        record_encoder_header(encoder, "b", 1, "\xff", 1);
    } else {
        record_encoder_string(encoder, RECORD_FIELD_KEY, key);
        record_encoder_string(encoder, RECORD_FIELD_VALUE, value);
    }
    record_encoder_uint(encoder, RECORD_FIELD_TIMESTAMP_NS, 1000 + index);
    record_encoder_uint(encoder, RECORD_FIELD_SEQUENCE, index + 1);
}

static void records_append(struct shm_log *log, uint64_t first, uint64_t count) {
    uint8_t record_bytes[RECORD_BYTES_MAX];
    struct record_encoder encoder = RECORD_ENCODER(record_bytes);
    for (uint64_t index = first; index < first + count; index++) {
        record_encode(&encoder, index);
        struct slice slice = {encoder.bytes, (uint32_t)encoder.length, 0};
        uint64_t offset = 0;
        REQUIRE(shm_log_append(log, &slice, 1, slice.length, index + 1, 5000 + index,
                               0x1122334455667788ull, &offset) == SHM_LOG_APPENDED);
        CHECK(offset == index);
    }
    CHECK(shm_log_publish(log));
}

/* ---- running intake-tail ---- */

struct run {
    char out[1 << 16];
    size_t out_length;
    char err[4096];
    int code;
};

static size_t file_slurp(const char *path, char *buffer, size_t capacity) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return 0;
    size_t length = fread(buffer, 1, capacity - 1, file);
    buffer[length] = '\0';
    fclose(file);
    return length;
}

static pid_t tail_start(const char *const *arguments, const char *out_path, const char *err_path) {
    char *argv[32];
    int count = 0;
    argv[count++] = (char *)test_program_path("intake-tail");
    argv[count++] = "--shm-dir";
    argv[count++] = test_directory;
    for (int index = 0; arguments[index] != NULL; index++) argv[count++] = (char *)arguments[index];
    argv[count] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void tail_collect(pid_t pid, struct run *run, const char *out_path, const char *err_path) {
    run->code = child_finish(pid);
    run->out_length = file_slurp(out_path, run->out, sizeof(run->out));
    file_slurp(err_path, run->err, sizeof(run->err));
    if (run->code != 0) fprintf(stderr, "(intake-tail exited %d: %s)\n", run->code, run->err);
}

/* Runs intake-tail --shm-dir DIR <arguments...> to completion. */
static void tail_run(struct run *run, const char *const *arguments) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof(out_path), "%s/tail.out", test_directory);
    snprintf(err_path, sizeof(err_path), "%s/tail.err", test_directory);
    tail_collect(tail_start(arguments, out_path, err_path), run, out_path, err_path);
}

static struct run run;

static void test_json(void) {
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--count", "3", NULL});
    CHECK(run.code == 0);
    const char *expected =
        "{\"offset\":0,\"sequence\":1,\"receive_time_ns\":5000,"
        "\"principal\":\"1122334455667788\",\"topic\":\"orders/eu\","
        "\"key\":\"k0\",\"value\":\"hello\",\"timestamp_ns\":1000,"
        "\"headers\":[{\"key\":\"h\",\"value\":\"v\"}]}\n"
        "{\"offset\":1,\"sequence\":2,\"receive_time_ns\":5001,"
        "\"principal\":\"1122334455667788\",\"topic\":\"orders/eu\","
        "\"key_base64\":\"AP8=\",\"value\":\"quote\\\"back\\\\slash\",\"timestamp_ns\":1001,"
        "\"headers\":[]}\n"
        "{\"offset\":2,\"sequence\":3,\"receive_time_ns\":5002,"
        "\"principal\":\"1122334455667788\",\"topic\":\"orders/eu\","
        "\"key\":\"\",\"value_base64\":\"AQID\",\"timestamp_ns\":1002,"
        "\"headers\":[{\"key\":\"a\",\"value\":\"1\"},"
        "{\"key\":\"b\",\"value_base64\":\"/w==\"}]}\n";
    CHECK(strcmp(run.out, expected) == 0);
    if (strcmp(run.out, expected) != 0) fprintf(stderr, "got:\n%s", run.out);
    CHECK(run.err[0] == '\0');
}

static void test_text_and_offsets(void) {
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "text", "--from-offset", "1",
                                         "--count", "5", NULL});
    CHECK(run.code == 0);
    const char *expected = "1 2 key_base64=AP8= value=quote\"back\\slash\n"
                           "2 3 key= value_base64=AQID\n"
                           "3 4 key=k3 value=v3\n"
                           "4 5 key=k4 value=v4\n"
                           "5 6 key=k5 value=v5\n";
    CHECK(strcmp(run.out, expected) == 0);
    if (strcmp(run.out, expected) != 0) fprintf(stderr, "got:\n%s", run.out);
    /* Without --count it stops at the end. */
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "text", "--from-offset", "8",
                                         NULL});
    CHECK(run.code == 0);
    CHECK(strcmp(run.out, "8 9 key=k8 value=v8\n9 10 key=k9 value=v9\n") == 0);
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--from-end", NULL});
    CHECK(run.code == 0);
    CHECK(run.out_length == 0);
}

static void test_raw(void) {
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "raw", NULL});
    CHECK(run.code == 0);
    static uint8_t expected[8192];
    size_t length = 0;
    uint8_t record_bytes[RECORD_BYTES_MAX];
    struct record_encoder encoder = RECORD_ENCODER(record_bytes);
    for (uint64_t index = 0; index < 10; index++) {
        record_encode(&encoder, index);
        length += record_encoder_delimited(&encoder, expected + length, sizeof(expected) - length);
    }
    CHECK(run.out_length == length);
    CHECK(memcmp(run.out, expected, length) == 0);
}

static void test_named_resume(void) {
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "text", "--name", "keeper",
                                         "--count", "4", NULL});
    CHECK(run.code == 0);
    CHECK(strncmp(run.out, "0 1 ", 4) == 0);
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "text", "--name", "keeper",
                                         "--count", "2", NULL});
    CHECK(run.code == 0);
    CHECK(strcmp(run.out, "4 5 key=k4 value=v4\n5 6 key=k5 value=v5\n") == 0);
}

static void test_follow(struct shm_log *log) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof(out_path), "%s/follow.out", test_directory);
    snprintf(err_path, sizeof(err_path), "%s/follow.err", test_directory);
    pid_t pid = tail_start((const char *const[]){"--topic", TOPIC, "--format", "text", "--follow",
                                                 "--from-offset", "10", "--count", "2", NULL},
                           out_path, err_path);
    /* Whether it opens before or after these appends, it must print 10 and 11 and exit. */
    usleep(100000);
    records_append(log, 10, 1);
    usleep(50000);
    records_append(log, 11, 1);
    tail_collect(pid, &run, out_path, err_path);
    CHECK(run.code == 0);
    CHECK(strcmp(run.out, "10 11 key=k10 value=v10\n11 12 key=k11 value=v11\n") == 0);
}

static void test_gap_and_errors(void) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = "lapped",
                                    .capacity_bytes = 4096,
                                    .retention = SHM_LOG_RETENTION_OVERWRITE};
    struct shm_log *log = NULL;
    char why[256];
    REQUIRE(shm_log_open_writer(&config, &log, why, sizeof(why)) == 0);
    records_append(log, 0, 300); /* 4 KiB holds far fewer than 300 of these */
    shm_log_close(log);
    tail_run(&run, (const char *const[]){"--topic", "lapped", "--format", "text", "--from-offset",
                                         "0", "--count", "1", NULL});
    CHECK(run.code == 0);
    unsigned long long first = 0, sequence = 0;
    CHECK(sscanf(run.out, "%llu %llu", &first, &sequence) == 2);
    CHECK(first > 0);
    char expected[512];
    snprintf(expected, sizeof(expected), "intake-tail: missed %llu records\n", first);
    CHECK(strcmp(run.err, expected) == 0);

    tail_run(&run, (const char *const[]){"--topic", "nope", NULL});
    CHECK(run.code == 1);
    snprintf(expected, sizeof(expected), "intake-tail: no log for topic nope in %s\n",
             test_directory);
    CHECK(strcmp(run.err, expected) == 0);
    tail_run(&run, (const char *const[]){"--topic", TOPIC, "--format", "xml", NULL});
    CHECK(run.code == 2);
}

int main(void) {
    test_directory_make("tail");
    struct shm_log *log = NULL;
    char why[256];
    REQUIRE(shm_test_writer_open(TOPIC, &log, why, sizeof(why)) == 0);
    records_append(log, 0, 10);
    test_json();
    test_text_and_offsets();
    test_raw();
    test_named_resume();
    test_follow(log);
    test_gap_and_errors();
    shm_log_close(log);
    return test_finish();
}
