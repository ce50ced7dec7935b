/*
 * test_producer_idempotent.c: the idempotent producer library's rules against a real intaked
 * (issue 12), each checked in the topics' logs with the consumer library.
 *
 *   rejected:       a record over --max-frame and a raw record with a non-UTF-8 topic are
 *                   REJECTED: each is reported failed (once, not retried), wait_acks returns
 *                   -EPROTO once, and every other record is delivered exactly once. The same
 *                   through intake-produce --delimited --producer-id.
 *   exhausted:      RESOURCE_EXHAUSTED (--topics-per-connection 1) is retried on a new
 *                   connection, where it succeeds.
 *   window:         intaked paused with SIGSTOP: a non-blocking producer gets -EAGAIN once its
 *                   window holds window_records records, a blocking one after io_timeout_ms;
 *                   after SIGCONT everything is delivered. A producer with a short
 *                   delivery_timeout_ms gets TIMED_OUT reports meanwhile.
 *   small_window:   an 8 KiB window wrapping under records of 4 bytes to 3 KB, intaked SIGKILLed
 *                   and restarted mid-stream: resends from anywhere in the ring.
 *   two_producers:  two ids on one topic with the same sequences: neither suppresses the other.
 *   reused_id:      an id reused with sequences restarting at 1 is refused at its Hello (the
 *                   answer is above what it sent: issue 17), its records reported failed and
 *                   nothing acked; continued with first_sequence it is delivered.
 *                   The same through intake-produce --producer-id / --first-sequence.
 */
#include <dirent.h>

#include "daemon_util.h"
#include "producer_util.h"

static struct intake_producer *open_idempotent(const char *address, const char *id,
                                               struct reports *reports,
                                               struct intake_producer_config *config) {
    memset(reports, 0, sizeof(*reports));
    config->address = address;
    config->producer_id = id;
    config->producer_id_length = strlen(id);
    config->reconnect_backoff_min_ms = 10;
    config->reconnect_backoff_max_ms = 100;
    config->on_delivery = reports_collect;
    config->delivery_context = reports;
    struct intake_producer *producer = NULL;
    char why[256];
    int result = intake_producer_open(config, &producer, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open: %s\n", why);
    REQUIRE(result == 0);
    return producer;
}

static void test_rejected(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-rejected");
    const char *const flags[] = {"--backend",   "pbuf", "--log-size", "4M",
                                 "--max-frame", "1K",   NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct reports reports;
    struct intake_producer_config config = {.io_timeout_ms = 5000};
    struct intake_producer *producer = open_idempotent(daemon.address, "rej-1", &reports, &config);
    static uint64_t delivered[200];
    uint64_t delivered_count = 0;
    uint64_t too_long = 0;
    uint64_t bad_topic = 0;
    for (int index = 0; index < 200; index++) {
        uint64_t sequence = 0;
        if (index == 50) {
            static char big[2000];
            memset(big, 'b', sizeof(big));
            CHECK(intake_producer_send(producer, "rej", NULL, 0, big, sizeof(big), 0, &too_long) ==
                  0);
            continue;
        }
        if (index == 120) {
            /* Topic 0xc3 0x28 (not UTF-8), value "x": the library does not check raw records. */
            static const uint8_t raw[] = {0x0a, 0x02, 0xc3, 0x28, 0x1a, 0x01, 'x'};
            CHECK(intake_producer_send_raw(producer, raw, sizeof(raw), &bad_topic) == 0);
            continue;
        }
        REQUIRE(producer_util_send(producer, "rej", &sequence) == 0);
        delivered[delivered_count++] = sequence;
    }
    CHECK(too_long == 51);
    CHECK(bad_topic == 121);
    /* A raw record may not bring its own sequence or producer_id. */
    static const uint8_t own_sequence[] = {0x0a, 0x01, 't', 0x28, 0x05};
    CHECK(intake_producer_send_raw(producer, own_sequence, sizeof(own_sequence), NULL) == -EINVAL);
    uint64_t last = intake_producer_last_sequence(producer);
    CHECK(last == 200);
    CHECK(intake_producer_wait_acks(producer, last, 20000) == -EPROTO);
    CHECK(strstr(intake_producer_last_error(producer), "record 51 failed: REJECTED") != NULL);
    CHECK(strstr(intake_producer_last_error(producer), "(and 1 more failed)") != NULL);
    /* Returned once: the next wait has nothing left to say. */
    CHECK(intake_producer_wait_acks(producer, last, 20000) == 0);
    struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
    intake_producer_stats(producer, &stats);
    intake_producer_close(producer);
    CHECK(reports.rejected == 2);
    CHECK(reports.failed_count == 2);
    CHECK(reports.failed_sequences[0] == 51);
    CHECK(reports.failed_sequences[1] == 121);
    CHECK(strstr(reports.last_detail, "REJECTED") != NULL);
    CHECK(reports.ok == 198);
    CHECK(reports.order_errors == 0);
    CHECK(stats.failed == 2);
    CHECK(stats.delivered == 198);
    /* Each rejection ended a connection; the producer went on with a new one. */
    CHECK(stats.connections >= 3);
    producer_util_check_log(directory, "rej", "rej-1", delivered, delivered_count);

    /* intake-produce: delimited records without sequences, the second with a non-UTF-8 topic;
     * the tool names the failed record, delivers the others and exits 1. */
    char command[1024];
    char output[4096];
    snprintf(command, sizeof(command),
             "printf '\\003\\012\\001t\\004\\012\\002\\303\\050\\003\\012\\001t' | "
             "%s --connect %s --delimited --producer-id cli-rej 2>&1",
             test_program_path("intake-produce"), daemon.address);
    CHECK(test_run_command(command, output, sizeof(output)) == 1);
    CHECK(strstr(output, "record 2 (topic \xc3\x28) failed: REJECTED") != NULL);
    CHECK(strstr(output, "intake-produce: 1 of 3 records failed") != NULL);
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(directory, "t", "check", &options, &consumer, why, sizeof(why)) ==
            0);
    struct intake_consumer_record record;
    uint64_t sequences[4] = {0};
    int count = 0;
    while (count < 4 && intake_consumer_poll(consumer, &record) == 1)
        sequences[count++] = record.sequence;
    intake_consumer_close(consumer);
    CHECK(count == 2);
    CHECK(sequences[0] == 1);
    CHECK(sequences[1] == 3);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

/* RESOURCE_EXHAUSTED is retried: with --topics-per-connection 1, the first connection creates
 * topic "ra" and is ended when it would create "rb"; the next connection creates "rb". */
static void test_exhausted_retried(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-exhausted");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", "--topics-per-connection",
                                 "1",         NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct reports reports;
    struct intake_producer_config config = {.io_timeout_ms = 5000};
    struct intake_producer *producer = open_idempotent(daemon.address, "exh-1", &reports, &config);
    static uint64_t sent[2][100];
    for (int index = 0; index < 100; index++) {
        REQUIRE(producer_util_send(producer, "ra", &sent[0][index]) == 0);
        REQUIRE(producer_util_send(producer, "rb", &sent[1][index]) == 0);
    }
    CHECK(intake_producer_wait_acks(producer, 200, 20000) == 0);
    struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
    intake_producer_stats(producer, &stats);
    /* The connection problem the producer retried. */
    CHECK(strstr(intake_producer_last_error(producer), "RESOURCE_EXHAUSTED") != NULL);
    intake_producer_close(producer);
    CHECK(stats.connections >= 2);
    CHECK(reports.ok == 200);
    CHECK(reports.order_errors == 0);
    producer_util_check_log(directory, "ra", "exh-1", sent[0], 100);
    producer_util_check_log(directory, "rb", "exh-1", sent[1], 100);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

#define WINDOW_RECORDS 64u

/* SIGSTOP is delivered to each thread as it next runs: wait until every thread of `pid` shows
 * state T in /proc, so the daemon is really paused (bounded: 5 s). */
static bool wait_stopped(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    for (int attempt = 0; attempt < 500; attempt++) {
        DIR *tasks = opendir(path);
        if (tasks == NULL) return false;
        bool all = true;
        struct dirent *entry;
        while ((entry = readdir(tasks)) != NULL) {
            if (entry->d_name[0] == '.') continue;
            char stat_path[400];
            snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", path, entry->d_name);
            FILE *stat = fopen(stat_path, "r");
            char line[512] = "";
            if (stat != NULL) {
                if (fgets(line, sizeof(line), stat) == NULL) line[0] = '\0';
                fclose(stat);
            }
            const char *after_name = strrchr(line, ')');
            if (after_name == NULL || after_name[1] != ' ' || after_name[2] != 'T') all = false;
        }
        closedir(tasks);
        if (all) return true;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return false;
}

static void test_window(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-window");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct reports quick_reports;
    struct reports blocking_reports;
    struct intake_producer_config quick_config = {
        .io_timeout_ms = 30000, .window_records = WINDOW_RECORDS, .nonblocking = true};
    struct intake_producer_config blocking_config = {.io_timeout_ms = 300,
                                                     .window_records = WINDOW_RECORDS / 2};
    struct intake_producer *quick =
        open_idempotent(daemon.address, "window-quick", &quick_reports, &quick_config);
    struct intake_producer *blocking =
        open_idempotent(daemon.address, "window-blocking", &blocking_reports, &blocking_config);
    static uint64_t quick_sent[1000];
    static uint64_t blocking_sent[1000];
    uint64_t quick_count = 0;
    uint64_t blocking_count = 0;
    /* Both connected and idle before the pause. */
    REQUIRE(producer_util_send(quick, "window.q", &quick_sent[quick_count++]) == 0);
    REQUIRE(producer_util_send(blocking, "window.b", &blocking_sent[blocking_count++]) == 0);
    CHECK(intake_producer_wait_acks(quick, 1, 10000) == 0);
    CHECK(intake_producer_wait_acks(blocking, 1, 10000) == 0);

    REQUIRE(kill(daemon.pid, SIGSTOP) == 0);
    REQUIRE(wait_stopped(daemon.pid));
    int result = 0;
    uint64_t accepted = 0;
    while (accepted < 1000 &&
           (result = producer_util_send(quick, "window.q", &quick_sent[quick_count])) == 0) {
        quick_count++;
        accepted++;
    }
    CHECK(result == -EAGAIN);
    CHECK(accepted == WINDOW_RECORDS);
    struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
    intake_producer_stats(quick, &stats);
    CHECK(stats.pending == WINDOW_RECORDS);
    CHECK(strstr(intake_producer_last_error(quick), "window full") != NULL);

    accepted = 0;
    uint64_t started_ns = 0;
    while (accepted < 1000) {
        started_ns = intake_now_ns();
        result = producer_util_send(blocking, "window.b", &blocking_sent[blocking_count]);
        if (result != 0) break;
        blocking_count++;
        accepted++;
    }
    CHECK(result == -EAGAIN);
    CHECK(accepted == WINDOW_RECORDS / 2);
    /* It waited its io_timeout_ms (300) for room before giving up. */
    CHECK(intake_now_ns() - started_ns >= 250u * 1000 * 1000);

    /* A delivery timeout while intaked is paused: each record fails TIMED_OUT, reported. */
    struct reports late_reports;
    struct intake_producer_config late_config = {.io_timeout_ms = 30000,
                                                 .delivery_timeout_ms = 200};
    struct intake_producer *late =
        open_idempotent(daemon.address, "window-late", &late_reports, &late_config);
    uint64_t late_sequence = 0;
    for (int index = 0; index < 5; index++)
        CHECK(producer_util_send(late, "window.late", &late_sequence) == 0);
    for (int round = 0; round < 100 && late_reports.timed_out < 5; round++)
        CHECK(intake_producer_poll(late, 100) >= 0);
    CHECK(late_reports.timed_out == 5);
    CHECK(strstr(late_reports.last_detail, "not acknowledged within 200 ms") != NULL);
    CHECK(intake_producer_wait_acks(late, late_sequence, 1000) == -ETIMEDOUT);
    intake_producer_stats(late, &stats);
    CHECK(stats.pending == 0);
    CHECK(stats.failed == 5);
    intake_producer_close(late);

    REQUIRE(kill(daemon.pid, SIGCONT) == 0);
    CHECK(intake_producer_wait_acks(quick, intake_producer_last_sequence(quick), 20000) == 0);
    CHECK(intake_producer_wait_acks(blocking, intake_producer_last_sequence(blocking), 20000) == 0);
    /* Room again. */
    CHECK(producer_util_send(quick, "window.q", &quick_sent[quick_count++]) == 0);
    CHECK(intake_producer_wait_acks(quick, intake_producer_last_sequence(quick), 20000) == 0);
    intake_producer_close(quick);
    intake_producer_close(blocking);
    CHECK(quick_reports.ok == quick_count);
    CHECK(blocking_reports.ok == blocking_count);
    producer_util_check_log(directory, "window.q", "window-quick", quick_sent, quick_count);
    producer_util_check_log(directory, "window.b", "window-blocking", blocking_sent,
                            blocking_count);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

#define WRAP_RECORDS 4000u

/* A small window (8 KiB) that wraps every few records, records from 4 bytes to 3 KB, and an
 * intaked restarted mid-stream: resends start anywhere in the ring, across its wrap. */
static void test_small_window(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-wrap");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "16M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    uint16_t port = daemon.port;
    char address[64];
    snprintf(address, sizeof(address), "%s", daemon.address);
    struct reports reports;
    struct intake_producer_config config = {
        .io_timeout_ms = 10000, .window_bytes = 8192, .window_records = 1024, .batch_bytes = 1500};
    struct intake_producer *producer = open_idempotent(address, "wrap-1", &reports, &config);
    producer_util_padding_max = 3000;
    static uint64_t sent[WRAP_RECORDS];
    for (uint32_t index = 0; index < WRAP_RECORDS; index++) {
        if (index == WRAP_RECORDS / 2) {
            /* Killed with records in flight that it never read: everything before them is
             * acknowledged, then intaked is stopped, two more records (each at most 3 KB, so
             * both fit the 8 KiB window) are written to its socket, and it is killed. Their
             * resend is certain, not a matter of timing. */
            REQUIRE(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer),
                                              20000) == 0);
            REQUIRE(kill(daemon.pid, SIGSTOP) == 0);
            REQUIRE(wait_stopped(daemon.pid));
            for (int unread = 0; unread < 2; unread++, index++)
                REQUIRE(producer_util_send(producer, "wrap", &sent[index]) == 0);
            REQUIRE(intake_producer_flush(producer) == 0);
            REQUIRE(kill(daemon.pid, SIGKILL) == 0);
            REQUIRE(waitpid(daemon.pid, NULL, 0) == daemon.pid);
            REQUIRE(daemon_start_port(&daemon, directory, flags, port));
        }
        REQUIRE(producer_util_send(producer, "wrap", &sent[index]) == 0);
    }
    CHECK(intake_producer_wait_acks(producer, WRAP_RECORDS, 20000) == 0);
    /* Larger than the whole window: refused at once, no sequence used. */
    static char huge[9000];
    CHECK(intake_producer_send(producer, "wrap", NULL, 0, huge, sizeof(huge), 0, NULL) ==
          -EMSGSIZE);
    CHECK(strstr(intake_producer_last_error(producer), "larger than the window") != NULL);
    CHECK(intake_producer_last_sequence(producer) == WRAP_RECORDS);
    struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
    intake_producer_stats(producer, &stats);
    intake_producer_close(producer);
    printf("small_window: connections=%" PRIu64 " resent=%" PRIu64 "\n", stats.connections,
           stats.resent);
    CHECK(stats.connections >= 2);
    CHECK(stats.resent > 0);
    CHECK(reports.ok == WRAP_RECORDS);
    producer_util_check_log(directory, "wrap", "wrap-1", sent, WRAP_RECORDS);
    producer_util_padding_max = 0;
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

#define SHARED_RECORDS 5000u

static void test_two_producers(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-two");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct reports reports[2];
    struct intake_producer_config configs[2] = {{.io_timeout_ms = 10000}, {.io_timeout_ms = 10000}};
    static const char *const ids[2] = {"two-a", "two-b"};
    struct intake_producer *producers[2];
    for (int which = 0; which < 2; which++)
        producers[which] =
            open_idempotent(daemon.address, ids[which], &reports[which], &configs[which]);
    static uint64_t sent[2][SHARED_RECORDS];
    for (uint32_t index = 0; index < SHARED_RECORDS; index++)
        for (int which = 0; which < 2; which++)
            REQUIRE(producer_util_send(producers[which], "shared", &sent[which][index]) == 0);
    for (int which = 0; which < 2; which++) {
        /* The same sequences 1..N from both: dedupe is per (producer_id, topic). */
        CHECK(intake_producer_last_sequence(producers[which]) == SHARED_RECORDS);
        CHECK(intake_producer_wait_acks(producers[which], SHARED_RECORDS, 20000) == 0);
        intake_producer_close(producers[which]);
        CHECK(reports[which].ok == SHARED_RECORDS);
        producer_util_check_log(directory, "shared", ids[which], sent[which], SHARED_RECORDS);
    }
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_WORKER_COUNTER(&daemon, records_duplicate) == 0);
    daemon_directory_remove(directory);
}

static void send_many(struct intake_producer *producer, uint64_t count, uint64_t *sent) {
    for (uint64_t index = 0; index < count; index++)
        REQUIRE(producer_util_send(producer, "reuse", &sent[index]) == 0);
    CHECK(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 20000) == 0);
}

static void test_reused_id(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-reuse");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    static uint64_t expected[300];
    struct reports reports;
    struct intake_producer_config config = {.io_timeout_ms = 10000};
    struct intake_producer *producer = open_idempotent(daemon.address, "app-1", &reports, &config);
    send_many(producer, 100, expected); /* 1..100 */
    intake_producer_close(producer);
    /* Restarting at 1: intake answers the Hello with 100, above anything this producer sent.
     * Nothing is released as delivered: all 10 are reported failed and the producer stops. */
    uint64_t ignored = 0, accepted = 0;
    producer = open_idempotent(daemon.address, "app-1", &reports, &config);
    int sent = 0;
    /* A send that services the connection may meet the refusal: then it returns -EPROTO. */
    while (accepted < 10 && (sent = producer_util_send(producer, "reuse", &ignored)) == 0)
        accepted++;
    CHECK(sent == 0 || sent == -EPROTO);
    if (sent == 0)
        CHECK(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 20000) ==
              -EPROTO);
    CHECK(strstr(intake_producer_last_error(producer), "above the highest this producer sent") !=
          NULL);
    /* Nothing delivered; every record the window held when the answer came is reported failed
     * (the answer may come before the first send, or during a send that had put its record in
     * the window). */
    CHECK(reports.ok == 0 && (reports.rejected == accepted || reports.rejected == accepted + 1));
    CHECK(intake_producer_flush(producer) == -EPROTO); /* it stopped */
    intake_producer_close(producer);
    /* Continued: 101..150. */
    config.first_sequence = 101;
    producer = open_idempotent(daemon.address, "app-1", &reports, &config);
    send_many(producer, 50, expected + 100);
    CHECK(expected[100] == 101);
    intake_producer_close(producer);
    producer_util_check_log(directory, "reuse", "app-1", expected, 150);

    const char *program = test_program_path("intake-produce");
    char command[1024];
    char output[4096];
    /* The tool: 20 records continuing the same id (151..170), then 5 restarting at 1. */
    snprintf(command, sizeof(command),
             "%s --connect %s --topic reuse --count 20 --size 16 --producer-id app-1 "
             "--first-sequence 151 2>&1",
             program, daemon.address);
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    CHECK(strstr(output, "acked 20 records (last sequence 170) producer_id=app-1") != NULL);
    snprintf(command, sizeof(command),
             "%s --connect %s --topic reuse --count 5 --size 16 --producer-id app-1 2>&1", program,
             daemon.address);
    CHECK(test_run_command(command, output, sizeof(output)) == 1);
    CHECK(strstr(output, "acked") == NULL);
    CHECK(strstr(output, "above the highest this producer sent (0)") != NULL);
    /* --idempotent alone: a generated UUID. */
    snprintf(command, sizeof(command),
             "%s --connect %s --topic other --count 3 --size 16 --idempotent 2>&1", program,
             daemon.address);
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    CHECK(strstr(output, "acked 3 records (last sequence 3) producer_id=") != NULL);
    const char *id = strstr(output, "producer_id=");
    CHECK(id != NULL && strlen(id) >= strlen("producer_id=") + 36 && id[12 + 8] == '-');

    /* The log: 1..150 from the library, then the tool's 151..170, nothing else. */
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(directory, "reuse", "check", &options, &consumer, why,
                                 sizeof(why)) == 0);
    struct intake_consumer_record record;
    uint64_t count = 0;
    uint64_t out_of_place = 0;
    while (intake_consumer_poll(consumer, &record) == 1) {
        if (record.sequence != count + 1) out_of_place++;
        count++;
    }
    intake_consumer_close(consumer);
    CHECK(count == 170);
    CHECK(out_of_place == 0);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

int main(void) {
    test_rejected();
    test_exhausted_retried();
    test_window();
    test_small_window();
    test_two_producers();
    test_reused_id();
    return test_finish();
}
