/*
 * test_acl_daemon.c: --acl end to end, against a real intaked (issue 17). Every connection is
 * `anonymous` here (the plaintext listener), so the rules name `anonymous` and `*`.
 *
 * Allow and deny:
 *   - records to allowed topics (a name, a prefix) are committed and acked;
 *   - a record to a topic that does not exist and may not be produced to is answered REJECTED
 *     with a detail naming the principal and the topic; the connection's earlier records are
 *     committed and acked, and nothing of the refused one exists: no log, no topic row;
 *   - the same for a topic that exists (created by --topic) but is not allowed: its log stays
 *     empty (the per-topic decision, cached after the first answer);
 *   - the principal's counters: admitted and denied records.
 * A reload under load:
 *   - two connections stream (acked, to "keep" and "flip") while the file changes and SIGHUP is
 *     sent; the reload takes effect on the open connections from their next record: "flip"'s
 *     connection ends REJECTED and its log holds exactly what was acked before, in order; "keep"
 *     streams through every reload and is never dropped: every record acked OK, its log exactly
 *     1..N;
 *   - a topic denied before the reload ("later") is allowed after it;
 *   - a malformed file is refused with its line number, in one line, and the rules in force
 *     stay (checked by sending); a third reload takes effect again;
 *   - the counters region says rule set 3 and one refused reload, and /metrics-style text shows
 *     the principal rows.
 * A malformed file at startup: exit 2 with the file, the line and the reason.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "acl_test_util.h"
#include "counters_render.h"
#include "counters_view.h"
#include "daemon_util.h"
#include "stream_client.h"

static char acl_path[256];

static void acl_write(const char *text) {
    acl_test_write(acl_path, text);
}

/* One connection: records 1..count to `topic` (sequence = index), then waits for the outcome. */
static bool send_and_read(uint16_t port, const char *topic, uint64_t count, struct raw_ack *last) {
    struct raw_ack_reader reader = {.fd = raw_connect_port(port)};
    for (uint64_t sequence = 1; sequence <= count; sequence++)
        raw_send_record(reader.fd, topic, (uint32_t)sequence, 16, sequence);
    bool final = raw_read_acks(&reader, count, 20000, last);
    close(reader.fd);
    return final;
}

/* The counters region rendered as /metrics or intake-stat would (the caller frees it). */
static char *render(const char *directory, enum counters_render_format format) {
    char path[512], why[256];
    snprintf(path, sizeof(path), "%s/%s", directory, INTAKE_COUNTERS_FILE_NAME);
    struct counters_view view;
    REQUIRE(counters_view_open(path, &view, why, sizeof(why)) == 0);
    struct counters_renderer renderer;
    counters_renderer_open(&renderer, &view, directory);
    size_t length = 0;
    char *text = counters_render_alloc(&renderer, &view, intake_now_ns(), format, &length);
    counters_renderer_close(&renderer);
    counters_view_close(&view);
    REQUIRE(text != NULL);
    return text;
}

static bool file_exists(const char *directory, const char *name) {
    char path[512];
    struct stat info;
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    return stat(path, &info) == 0;
}

static void test_allow_and_deny(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "acl-deny");
    acl_write("# orders for anonymous, logs.* for everyone\n"
              "allow anonymous produce orders\n"
              "allow * produce logs.*\n");
    const char *flags[] = {"--acl", acl_path, "--topic", "forbidden", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    CHECK(strstr(daemon.log, "rule set 1: 2 allow rules, 0 quotas, 1 principals named") != NULL);

    struct raw_ack last;
    CHECK(!send_and_read(daemon.port, "orders", 20, &last));
    CHECK(last.status == RAW_ACK_OK && last.sequence == 20);
    CHECK(!send_and_read(daemon.port, "logs.app", 5, &last));
    CHECK(last.sequence == 5);

    /* Allowed records, then one to a topic nobody may produce to, then more. */
    struct raw_ack_reader reader = {.fd = raw_connect_port(daemon.port)};
    for (uint64_t sequence = 1; sequence <= 10; sequence++)
        raw_send_record(reader.fd, "orders", (uint32_t)sequence, 16, sequence);
    raw_send_record(reader.fd, "secret", 11, 16, 11);
    raw_send_record(reader.fd, "orders", 12, 16, 12);
    CHECK(raw_read_acks(&reader, 0, 20000, &last));
    CHECK(last.status == RAW_ACK_REJECTED);
    CHECK(last.sequence == 10); /* everything before it committed */
    CHECK(strstr(last.detail, "principal \"anonymous\"") != NULL);
    CHECK(strstr(last.detail, "topic \"secret\"") != NULL);
    char buffer[16];
    CHECK(read(reader.fd, buffer, sizeof(buffer)) == 0); /* the connection ended */
    close(reader.fd);
    /* Nothing of it exists: no log, no other file of the topic. */
    CHECK(!file_exists(directory, "secret.log"));
    CHECK(!file_exists(directory, "secret.consumers"));
    uint64_t sequences[64];
    CHECK(stream_log_sequences(directory, "orders", sequences, 64) == 30); /* 20 + 10 */
    CHECK(stream_log_sequences(directory, "secret", sequences, 64) == -1);

    /* A topic that exists but is not allowed: refused from the first record, twice (the second
     * time from the cached decision). */
    for (int attempt = 0; attempt < 2; attempt++) {
        CHECK(send_and_read(daemon.port, "forbidden", 3, &last));
        CHECK(last.status == RAW_ACK_REJECTED && last.sequence == 0);
        CHECK(strstr(last.detail, "topic \"forbidden\"") != NULL);
    }
    long forbidden = stream_log_sequences(directory, "forbidden", sequences, 64);
    CHECK(forbidden <= 0); /* its log (if opened yet) holds nothing */

    struct counters_view_principal principal;
    uint64_t generation = 0, failures = 0;
    CHECK(acl_test_principal(directory, "anonymous", &principal, &generation, &failures));
    CHECK(principal.records_admitted == 35 && principal.records_denied == 3);
    CHECK(principal.bytes_admitted > 35 * 16);
    CHECK(generation == 1 && failures == 0);
    CHECK(acl_test_principal(directory, "other", &principal, &generation, &failures));
    CHECK(principal.records_admitted == 0 && principal.records_denied == 0);
    /* What /metrics and intake-stat render from the same rows. */
    char *metrics = render(directory, COUNTERS_RENDER_PROMETHEUS);
    CHECK(strstr(metrics, "\nintake_acl_enabled 1\n") != NULL);
    CHECK(strstr(metrics, "\nintake_acl_rule_set 1\n") != NULL);
    CHECK(strstr(metrics,
                 "\nintake_principal_records_admitted_total{principal=\"anonymous\"} 35\n") !=
          NULL);
    CHECK(strstr(metrics, "\nintake_principal_records_denied_total{principal=\"anonymous\"} 3\n") !=
          NULL);
    CHECK(strstr(metrics, "\nintake_principal_records_denied_total{principal=\"other\"} 0\n") !=
          NULL);
    free(metrics);
    char *text = render(directory, COUNTERS_RENDER_TEXT);
    CHECK(strstr(text, "\nprincipal anonymous: records admitted=35 ") != NULL);
    CHECK(strstr(text, " denied=3 ") != NULL);
    free(text);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void test_reload_under_load(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "acl-reload");
    acl_write("allow anonymous produce keep\n"
              "allow anonymous produce flip\n");
    const char *flags[] = {"--acl", acl_path, "--reactors", "2", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct raw_ack last;
    CHECK(send_and_read(daemon.port, "later", 1, &last)); /* denied under the first rules */
    CHECK(last.status == RAW_ACK_REJECTED && strstr(last.detail, "\"later\"") != NULL);

    struct stream_client keep, flip;
    stream_start(&keep, daemon.port, "keep");
    stream_start(&flip, daemon.port, "flip");
    REQUIRE(stream_wait_acked(&keep, 2000, 60000));
    REQUIRE(stream_wait_acked(&flip, 2000, 60000));

    /* Reload 1: "flip" is no longer allowed, "later" is. */
    acl_write("allow anonymous produce keep\n"
              "allow anonymous produce later # new\n");
    kill(daemon.pid, SIGHUP);
    CHECK(daemon_log_wait(&daemon, "intaked: SIGHUP: reloaded --acl", 20000));
    CHECK(daemon_log_wait(&daemon, "rule set 2: 2 allow rules", 1000));
    /* The open "flip" connection's next record is refused. */
    for (int waited = 0; waited < 30000 && !atomic_load(&flip.finished); waited += 10) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    REQUIRE(atomic_load(&flip.finished));
    pthread_join(flip.thread, NULL);
    CHECK(flip.final_not_ok);
    CHECK(flip.final_ack.status == RAW_ACK_REJECTED);
    CHECK(strstr(flip.final_ack.detail, "principal \"anonymous\" may not produce to topic "
                                        "\"flip\"") != NULL);
    CHECK(flip.final_ack.sequence >= 2000);
    /* What was acked is in the log, once and in order; nothing after the refused record. */
    CHECK(stream_log_is(directory, "flip", flip.final_ack.sequence));
    CHECK(!send_and_read(daemon.port, "later", 10, &last));
    CHECK(last.status == RAW_ACK_OK && last.sequence == 10);

    /* Reload 2: a malformed file. One line saying why; the rules in force stay. */
    uint64_t keep_before = atomic_load(&keep.acked);
    acl_write("allow anonymous produce keep\n"
              "allow anonymous produce flip\n"
              "allow anonymous produce\n");
    kill(daemon.pid, SIGHUP);
    CHECK(daemon_log_wait(
        &daemon, "intaked: SIGHUP: reload failed, keeping the old configuration: --acl", 20000));
    CHECK(strstr(daemon.log, "line 3: allow takes PRINCIPAL produce TOPICS") != NULL);
    CHECK(send_and_read(daemon.port, "flip", 1, &last));
    CHECK(last.status == RAW_ACK_REJECTED);
    CHECK(!send_and_read(daemon.port, "later", 1, &last));
    CHECK(last.status == RAW_ACK_OK);

    /* Reload 3: everything for everyone. */
    acl_write("allow * produce *\n");
    kill(daemon.pid, SIGHUP);
    CHECK(daemon_log_wait(&daemon, "rule set 3: 1 allow rules", 20000));
    CHECK(!send_and_read(daemon.port, "flip", 1, &last));
    CHECK(last.status == RAW_ACK_OK);

    /* "keep" streamed through all three reloads on one connection. */
    CHECK(stream_wait_acked(&keep, keep_before + 2000, 60000));
    stream_finish(&keep);
    CHECK(!keep.final_not_ok);
    CHECK(!keep.closed_unacked);
    uint64_t kept = atomic_load(&keep.sent);
    CHECK(atomic_load(&keep.acked) == kept);
    CHECK(stream_log_is(directory, "keep", kept));
    fprintf(stderr, "reload under load: keep streamed %lu records through 3 reloads, flip %lu\n",
            (unsigned long)kept, (unsigned long)flip.final_ack.sequence);

    struct counters_view_principal principal;
    uint64_t generation = 0, failures = 0;
    CHECK(!acl_test_principal(directory, "anonymous", &principal, &generation, &failures));
    /* The third file names nobody: anonymous is `other` now, and its row is out of force. */
    CHECK(acl_test_principal(directory, "other", &principal, &generation, &failures));
    CHECK(generation == 3 && failures == 1);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void test_bad_file_at_startup(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "acl-bad");
    acl_write("allow anonymous produce orders\n\nquota anonymous 10 ten\n");
    char command[1024];
    snprintf(command, sizeof(command), "%s --listen 127.0.0.1:1 --shm-dir %s --acl %s 2>&1",
             test_program_path("intaked"), directory, acl_path);
    FILE *output = popen(command, "r");
    REQUIRE(output != NULL);
    char text[1024] = "";
    size_t got = fread(text, 1, sizeof(text) - 1, output);
    text[got] = '\0';
    int status = pclose(output);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    char expected[512];
    snprintf(expected, sizeof(expected), "intaked: --acl %s line 3: bad rate \"ten\"", acl_path);
    CHECK(strstr(text, expected) != NULL);
    CHECK(strchr(text, '\n') == strrchr(text, '\n')); /* one line */
    daemon_directory_remove(directory);
}

int main(void) {
    snprintf(acl_path, sizeof(acl_path), "/tmp/test-acl-daemon-%d.acl", (int)getpid());
    test_bad_file_at_startup();
    test_allow_and_deny();
    test_reload_under_load();
    unlink(acl_path);
    return test_finish();
}
