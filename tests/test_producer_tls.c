/*
 * test_producer_tls.c: the producer library's TLS (include/intake/producer.h, "TLS") and
 * intake-produce --tls-*, against TLS stacks we did not write, with certificates made at test
 * time (scripts/tls-dev-certs).
 *
 *   terminated:  tests/tls_terminator.py (Python's ssl) in front of a real plaintext intaked:
 *                a plain producer with acks and intake-produce --tls-ca, their records
 *                byte-exact in the log; the idempotent producer while the terminator breaks
 *                its connection twice with records written and unread, and intaked is
 *                SIGKILLed and restarted: each record once, in order, after reconnects with a
 *                new handshake each.
 *   mutual:      the terminator requiring a client certificate: client.pem is accepted (its
 *                principal is its URI SAN), client-cn.pem (its CN); without one the producer
 *                says "certificate required"; one from another CA is refused.
 *   verify:      openssl s_server -tls1_3: what it decrypts is what was sent; another CA, an
 *                expired certificate and a wrong name fail open with a line naming the
 *                certificate and why; an address matches IP SANs; tls_server_name overrides
 *                the host; with -Verify the producer presents its certificate; idempotent:
 *                the failure is retried and named in last_error.
 *   files:       missing, non-PEM, mismatched and passphrase-protected files, and
 *                misconfigurations, fail open with a line naming what is wrong.
 *   plaintext:   TLS to intaked's plaintext port fails with -ECONNABORTED, saying so.
 *   stalled:     a peer that accepts TCP and never answers the handshake: plain open fails
 *                after io_timeout_ms; the idempotent producer drops and retries.
 *   window:      the terminator stopped (SIGSTOP): a non-blocking producer gets -EAGAIN once
 *                its window is full; after SIGCONT everything is delivered exactly once.
 *   key_update:  a KeyUpdate every 64 records: s_server (-msg) sees them and decrypts the
 *                data intact; through the terminator into intaked, every record once.
 *   daemon:      intaked's own --tls-listen with --tls-client-ca:
 *                the plain producer and intake-produce with a client certificate, byte-exact;
 *                64 KiB records; the idempotent producer across a SIGKILL and restart, exactly
 *                once; no client certificate, and one from another CA, refused.
 *   allocations: OpenSSL's allocations (CRYPTO_set_mem_functions) while 20,000 records are
 *                sent and acked over TLS, after the first 1,000: at most OpenSSL 3.0's own per
 *                TLS record (three 40-byte WPACKET frames per record written, one per record
 *                read, freed before the call returns), never per intake record.
 */
#include <dirent.h>
#include <openssl/crypto.h>

#include "daemon_util.h"
#include "producer_internal.h"
#include "producer_util.h"
#include "tls_util.h"

static char certs[256];

/* ---- OpenSSL's allocations, counted (set before OpenSSL allocates anything) ---- */

static uint64_t openssl_allocations;

static void *count_malloc(size_t size, const char *file, int line) {
    (void)file;
    (void)line;
    openssl_allocations++;
    return malloc(size);
}

static void *count_realloc(void *pointer, size_t size, const char *file, int line) {
    (void)file;
    (void)line;
    openssl_allocations++;
    return realloc(pointer, size);
}

static void count_free(void *pointer, const char *file, int line) {
    (void)file;
    (void)line;
    free(pointer);
}

/* ---- helpers ---- */

static struct intake_producer_config tls_config(const char *address) {
    struct intake_producer_config config = {
        .address = address,
        .io_timeout_ms = 5000,
        .acks = true,
        .tls_ca_file = tls_path(certs, "ca.pem"),
    };
    return config;
}

/* Opens; on failure the reason goes to stderr and *why. */
static int open_producer(const struct intake_producer_config *config,
                         struct intake_producer **producer, char *why, size_t capacity) {
    int result = intake_producer_open(config, producer, why, capacity);
    if (result != 0) fprintf(stderr, "open %s: %d %s\n", config->address, result, why);
    return result;
}

/* An idempotent producer with `config` and id `id`, reporting into `reports`, reconnecting
 * after 10 to 100 ms. */
static struct intake_producer *open_idempotent(struct intake_producer_config *config,
                                               const char *id, struct reports *reports) {
    config->producer_id = id;
    config->producer_id_length = strlen(id);
    config->reconnect_backoff_min_ms = 10;
    config->reconnect_backoff_max_ms = 100;
    config->on_delivery = reports_collect;
    config->delivery_context = reports;
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(config, &producer, why, sizeof(why)) == 0);
    return producer;
}

/* Plain records "<prefix>-1".."<prefix>-count" in order in `topic`'s log (after `skip`). */
static bool log_holds_values(const char *directory, const char *topic, const char *prefix,
                             uint64_t count) {
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(directory, topic, "tls-check", &options, &consumer, NULL, 0) != 0)
        return false;
    uint64_t found = 0;
    uint64_t wrong = 0;
    struct intake_consumer_record record;
    while (intake_consumer_poll(consumer, &record) == 1) {
        const uint8_t *value = NULL;
        const uint8_t *id = NULL;
        size_t value_length = 0;
        size_t id_length = 0;
        char wanted[64];
        int wanted_length =
            snprintf(wanted, sizeof(wanted), "%s-%llu", prefix, (unsigned long long)(found + 1));
        if (!producer_util_fields(record.bytes, record.length, &value, &value_length, &id,
                                  &id_length) ||
            value_length != (size_t)wanted_length || memcmp(value, wanted, value_length) != 0)
            wrong++;
        found++;
    }
    intake_consumer_close(consumer);
    if (found != count || wrong != 0)
        fprintf(stderr, "%s: %llu records (%llu wrong), expected %llu\n", topic,
                (unsigned long long)found, (unsigned long long)wrong, (unsigned long long)count);
    return found == count && wrong == 0;
}

static int send_numbered(struct intake_producer *producer, const char *topic, const char *prefix,
                         uint64_t number) {
    char value[64];
    int length = snprintf(value, sizeof(value), "%s-%llu", prefix, (unsigned long long)number);
    return intake_producer_send(producer, topic, NULL, 0, value, (size_t)length, 0, NULL);
}

/* An idempotent producer with `config` (which cannot get through) opens anyway, keeps its
 * record, retries for `poll_ms`, and names the failure in last_error. */
static void check_idempotent_retries(const struct intake_producer_config *base, const char *failure,
                                     int poll_ms) {
    struct intake_producer_config config = *base;
    config.producer_id = "tls-retries";
    config.producer_id_length = strlen("tls-retries");
    config.reconnect_backoff_min_ms = 10;
    config.reconnect_backoff_max_ms = 50;
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(intake_producer_open(&config, &producer, why, sizeof(why)) == 0);
    uint64_t sequence = 0;
    REQUIRE(producer_util_send(producer, "t", &sequence) == 0);
    CHECK(intake_producer_poll(producer, poll_ms) == 0);
    struct intake_producer_stats stats;
    intake_producer_stats(producer, &stats);
    CHECK(stats.connections == 0);
    CHECK(stats.pending == 1);
    CHECK(stats.disconnects >= 1);
    CHECK(strstr(intake_producer_last_error(producer), failure) != NULL);
    CHECK(strstr(intake_producer_last_error(producer), "(retrying)") != NULL);
    intake_producer_close(producer);
}

/* ---- terminated: through Python's ssl into a real intaked ---- */

static void test_terminated_plain(const char *directory, const struct tls_peer *terminator) {
    struct intake_producer_config config = tls_config(terminator->address);
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    for (uint64_t number = 1; number <= 5000; number++)
        REQUIRE(send_numbered(producer, "tls-plain", "p", number) == 0);
    CHECK(intake_producer_wait_acks(producer, 5000, 20000) == 0);
    CHECK(intake_producer_acked(producer) == 5000);
    intake_producer_close(producer);
    CHECK(log_holds_values(directory, "tls-plain", "p", 5000));
    /* Python's server picks the suite (AES-256-GCM, by its own preference). */
    CHECK(tls_count_text(terminator->log_path, "version=TLSv1.3 principal=anonymous") >= 1);

    /* intake-produce --tls-ca, lines from stdin. */
    char command[1024];
    char output[4096];
    snprintf(command, sizeof(command),
             "seq 1 300 | sed 's/^/cli-/' | %s --connect %s --topic tls-cli --acks --tls-ca %s "
             "2>&1",
             test_program_path("intake-produce"), terminator->address, tls_path(certs, "ca.pem"));
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    CHECK(strstr(output, "acked 300 records (last sequence 300)") != NULL);
    CHECK(log_holds_values(directory, "tls-cli", "cli", 300));
    /* Usage: TLS options without --tls-ca, or a certificate without its key. */
    snprintf(command, sizeof(command), "%s --connect %s --topic x --tls-cert %s 2>&1",
             test_program_path("intake-produce"), terminator->address,
             tls_path(certs, "client.pem"));
    CHECK(test_run_command(command, output, sizeof(output)) == 2);
    CHECK(strstr(output, "need --tls-ca") != NULL);
    snprintf(command, sizeof(command), "%s --connect %s --topic x --tls-ca %s --tls-key %s 2>&1",
             test_program_path("intake-produce"), terminator->address, tls_path(certs, "ca.pem"),
             tls_path(certs, "client.key"));
    CHECK(test_run_command(command, output, sizeof(output)) == 2);
    CHECK(strstr(output, "--tls-cert and --tls-key go together") != NULL);
    /* A verification failure through the tool: one line, exit 1. */
    snprintf(command, sizeof(command),
             "echo x | %s --connect %s --topic x --acks --tls-ca %s --tls-server-name nope.test "
             "2>&1",
             test_program_path("intake-produce"), terminator->address, tls_path(certs, "ca.pem"));
    CHECK(test_run_command(command, output, sizeof(output)) == 1);
    CHECK(strstr(output, "hostname mismatch (it does not name 'nope.test')") != NULL);
}

/* Sends `count` records to each of two topics, noting their sequences. */
static void send_pairs(struct intake_producer *producer, uint64_t (*sent)[3000], int *count,
                       int more) {
    for (int index = 0; index < more; index++, (*count)++) {
        REQUIRE(producer_util_send(producer, "tls-a", &sent[0][*count]) == 0);
        REQUIRE(producer_util_send(producer, "tls-b", &sent[1][*count]) == 0);
    }
}

/* The idempotent producer over TLS: records written into a connection that breaks before
 * anything of them reached intaked (the terminator paused, then reset), twice, then intaked
 * SIGKILLed and restarted: each record once, in order, after a new handshake each time. */
static void test_terminated_idempotent(const char *directory, struct daemon *daemon,
                                       const char *const *flags, struct tls_peer *terminator) {
    struct reports reports = {0};
    struct intake_producer_config config = tls_config(terminator->address);
    struct intake_producer *producer = open_idempotent(&config, "tls-idem", &reports);
    static uint64_t sent[2][3000];
    int count = 0;
    send_pairs(producer, sent, &count, 500);
    REQUIRE(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 20000) ==
            0);
    for (int round = 1; round <= 2; round++) {
        kill(terminator->pid, SIGUSR2);
        REQUIRE(tls_wait_for_count(terminator->log_path, "paused", round, 10000));
        send_pairs(producer, sent, &count, 500);
        REQUIRE(intake_producer_poll(producer, 0) >= 0); /* written, never read */
        kill(terminator->pid, SIGUSR1);
        REQUIRE(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer),
                                          20000) == 0);
    }
    send_pairs(producer, sent, &count, 500);
    REQUIRE(intake_producer_poll(producer, 0) >= 0);
    kill(daemon->pid, SIGKILL);
    waitpid(daemon->pid, NULL, 0);
    REQUIRE(daemon_start_port(daemon, directory, flags, daemon->port));
    send_pairs(producer, sent, &count, 500);
    uint64_t last = intake_producer_last_sequence(producer);
    CHECK(intake_producer_wait_acks(producer, last, 30000) == 0);
    struct intake_producer_stats stats;
    intake_producer_stats(producer, &stats);
    intake_producer_close(producer);
    printf("idempotent over TLS: %llu connections, %llu disconnects, %llu resent\n",
           (unsigned long long)stats.connections, (unsigned long long)stats.disconnects,
           (unsigned long long)stats.resent);
    CHECK(reports.ok == 5000);
    CHECK(reports.order_errors == 0);
    CHECK(stats.connections >= 4);
    /* Both paused rounds' records were written once and never read: all written again. */
    CHECK(stats.resent >= 2000);
    producer_util_check_log(directory, "tls-a", "tls-idem", sent[0], (uint64_t)count);
    producer_util_check_log(directory, "tls-b", "tls-idem", sent[1], (uint64_t)count);
}

/* The window fills while the terminator is stopped: -EAGAIN, then everything once. */
static void test_window(const char *directory, struct tls_peer *terminator) {
    struct reports reports = {0};
    struct intake_producer_config config = tls_config(terminator->address);
    config.window_records = 256;
    config.nonblocking = true;
    config.io_timeout_ms = 60000; /* a stopped peer is not a stalled connection here */
    struct intake_producer *producer = open_idempotent(&config, "tls-window", &reports);
    static uint64_t sent[1024];
    uint64_t count = 0;
    /* First connected and streaming, then stopped. */
    REQUIRE(producer_util_send(producer, "tls-w", &sent[count++]) == 0);
    REQUIRE(intake_producer_wait_acks(producer, 1, 10000) == 0);
    kill(terminator->pid, SIGSTOP);
    int result = 0;
    while (count < 1024 && (result = producer_util_send(producer, "tls-w", &sent[count])) == 0)
        count++;
    CHECK(result == -EAGAIN);
    CHECK(count >= 256);
    CHECK(strstr(intake_producer_last_error(producer), "window full") != NULL);
    kill(terminator->pid, SIGCONT);
    CHECK(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 30000) == 0);
    intake_producer_close(producer);
    CHECK(reports.ok == count);
    producer_util_check_log(directory, "tls-w", "tls-window", sent, count);
}

/* KeyUpdates every 64 records through the terminator: every record once. */
static void test_key_update_terminated(const char *directory, const struct tls_peer *terminator) {
    struct intake_producer_config config = tls_config(terminator->address);
    config.batch_bytes = 1024; /* about one TLS record per 1 KiB */
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    producer->tls.key_update_records = 64;
    for (uint64_t number = 1; number <= 20000; number++)
        REQUIRE(send_numbered(producer, "tls-ku", "ku", number) == 0);
    CHECK(intake_producer_wait_acks(producer, 20000, 30000) == 0);
    uint64_t updates = producer->tls.key_updates;
    intake_producer_close(producer);
    printf("key updates through the terminator: %llu\n", (unsigned long long)updates);
    CHECK(updates >= 5);
    CHECK(log_holds_values(directory, "tls-ku", "ku", 20000));
}

/* OpenSSL 3.0 allocates three 40-byte WPACKET frames for each TLS record it writes (the
 * record, its header, the AEAD's additional data) and one for each it reads, and frees them
 * before returning. Checks that nothing else allocates while records flow: the producer
 * library allocates nothing itself (its window and batch are sized at open). */
static uint64_t allocations_beyond_records(const struct intake_producer *producer,
                                           uint64_t allocations, uint64_t written_before,
                                           uint64_t read_before, const char *what) {
    uint64_t written = producer->tls.records_written - written_before;
    uint64_t read = producer->tls.records_read - read_before;
    uint64_t expected = 3 * written + read;
    printf("%s: %llu OpenSSL allocations for %llu TLS records written and %llu read\n", what,
           (unsigned long long)allocations, (unsigned long long)written, (unsigned long long)read);
    CHECK(written > 0);
    return allocations > expected ? allocations - expected : 0;
}

static void test_allocations(const char *directory, const struct tls_peer *terminator) {
    struct intake_producer_config config = tls_config(terminator->address);
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    for (uint64_t number = 1; number <= 1000; number++)
        REQUIRE(send_numbered(producer, "tls-alloc", "a", number) == 0);
    REQUIRE(intake_producer_wait_acks(producer, 1000, 20000) == 0);
    uint64_t before = openssl_allocations;
    uint64_t written_before = producer->tls.records_written;
    uint64_t read_before = producer->tls.records_read;
    for (uint64_t number = 1001; number <= 21000; number++) {
        REQUIRE(send_numbered(producer, "tls-alloc", "a", number) == 0);
        if (number % 2000 == 0) REQUIRE(intake_producer_wait_acks(producer, number, 20000) == 0);
    }
    REQUIRE(intake_producer_wait_acks(producer, 21000, 20000) == 0);
    CHECK(allocations_beyond_records(producer, openssl_allocations - before, written_before,
                                     read_before, "plain, 20,000 records") == 0);
    intake_producer_close(producer);
    CHECK(log_holds_values(directory, "tls-alloc", "a", 21000));

    /* The same for the idempotent producer (window, Hello done). */
    struct reports reports = {0};
    producer = open_idempotent(&config, "tls-alloc-idem", &reports);
    static uint64_t sent[21000];
    for (int index = 0; index < 1000; index++)
        REQUIRE(producer_util_send(producer, "tls-alloc-i", &sent[index]) == 0);
    REQUIRE(intake_producer_wait_acks(producer, 1000, 20000) == 0);
    before = openssl_allocations;
    written_before = producer->tls.records_written;
    read_before = producer->tls.records_read;
    for (int index = 1000; index < 21000; index++)
        REQUIRE(producer_util_send(producer, "tls-alloc-i", &sent[index]) == 0);
    REQUIRE(intake_producer_wait_acks(producer, 21000, 20000) == 0);
    CHECK(allocations_beyond_records(producer, openssl_allocations - before, written_before,
                                     read_before, "idempotent, 20,000 records") == 0);
    intake_producer_close(producer);
    CHECK(reports.ok == 21000);
    producer_util_check_log(directory, "tls-alloc-i", "tls-alloc-idem", sent, 21000);
}

static void test_terminated(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-tls");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "8M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct tls_peer terminator;
    REQUIRE(tls_peer_terminator(&terminator, certs, daemon.address, NULL));
    test_terminated_plain(directory, &terminator);
    test_terminated_idempotent(directory, &daemon, flags, &terminator);
    test_window(directory, &terminator);
    test_key_update_terminated(directory, &terminator);
    test_allocations(directory, &terminator);

    /* plaintext: TLS to intaked's plaintext port. */
    struct intake_producer_config config = tls_config(daemon.address);
    struct intake_producer *producer = NULL;
    char why[256];
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -ECONNABORTED);
    printf("TLS to a plaintext listener: %s\n", why);
    CHECK(strstr(why, daemon.address) != NULL);
    CHECK(strstr(why, "TLS handshake: ") != NULL);
    tls_peer_stop(&terminator);
    tls_peer_remove_log(&terminator);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

/* ---- mutual: the terminator requires a client certificate ---- */

static int mutual_attempt(const char *address, const char *certificate, const char *key,
                          char *error, size_t capacity) {
    struct intake_producer_config config = tls_config(address);
    config.tls_cert_file = certificate ? tls_path(certs, certificate) : NULL;
    config.tls_key_file = key ? tls_path(certs, key) : NULL;
    struct intake_producer *producer = NULL;
    char why[256];
    int result = open_producer(&config, &producer, why, sizeof(why));
    if (result != 0) {
        snprintf(error, capacity, "%s", why);
        return result;
    }
    for (uint64_t number = 1; result == 0 && number <= 10; number++)
        result = send_numbered(producer, "tls-mutual", "m", number);
    if (result == 0) result = intake_producer_wait_acks(producer, 10, 10000);
    snprintf(error, capacity, "%s", intake_producer_last_error(producer));
    intake_producer_close(producer);
    return result;
}

static void test_mutual(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-tls-mutual");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct tls_peer terminator;
    REQUIRE(tls_peer_terminator(&terminator, certs, daemon.address, tls_path(certs, "ca.pem")));
    char error[512];
    CHECK(mutual_attempt(terminator.address, "client.pem", "client.key", error, sizeof(error)) ==
          0);
    CHECK(
        tls_wait_for_text(terminator.log_path, "principal=spiffe://intake.test/producer-1", 5000));
    CHECK(mutual_attempt(terminator.address, "client-cn.pem", "client-cn.key", error,
                         sizeof(error)) == 0);
    CHECK(tls_wait_for_text(terminator.log_path, "principal=producer-2", 5000));
    CHECK(producer_util_count_logged(directory, "tls-mutual") == 20); /* two producers */
    /* No certificate: TLS 1.3 finishes the client's side first, so the refusal arrives with
     * the first read: a sticky -ECONNABORTED naming the alert. */
    CHECK(mutual_attempt(terminator.address, NULL, NULL, error, sizeof(error)) == -ECONNABORTED);
    printf("no client certificate: %s\n", error);
    CHECK(strstr(error, "certificate required") != NULL);
    CHECK(strstr(error, "intake requires a client certificate") != NULL);
    CHECK(mutual_attempt(terminator.address, "other-client.pem", "other-client.key", error,
                         sizeof(error)) == -ECONNABORTED);
    printf("a client certificate from another CA: %s\n", error);
    CHECK(strstr(error, "refused this producer's certificate") != NULL);
    CHECK(tls_wait_for_count(terminator.log_path, "handshake failed", 2, 5000));
    CHECK(tls_count_text(terminator.log_path, "handshake failed") == 2);
    tls_peer_stop(&terminator);
    tls_peer_remove_log(&terminator);
    CHECK(daemon_stop(&daemon) == 0);
    /* What the refused producers sent never reached intaked. */
    CHECK(DAEMON_WORKER_COUNTER(&daemon, records_committed) == 20);
    daemon_directory_remove(directory);
}

/* ---- verify: against openssl s_server ---- */

/* Opens a producer to `server` (at `address`, or its own), sends one line and waits until
 * s_server printed it: 0, or open's error with the reason in `why`. */
static int verify_attempt(const struct tls_peer *server, const char *address,
                          const char *server_name, char *why, size_t capacity) {
    struct intake_producer_config config = tls_config(address ? address : server->address);
    config.acks = false;
    config.tls_server_name = server_name;
    struct intake_producer *producer = NULL;
    int result = intake_producer_open(&config, &producer, why, capacity);
    if (result != 0) return result;
    static int attempt;
    char line[96];
    int length = snprintf(line, sizeof(line), "verified-%d-%s\n", ++attempt,
                          server_name ? server_name : "-");
    result = intake_producer_send_raw(producer, line, (size_t)length, NULL);
    if (result == 0) result = intake_producer_flush(producer);
    if (result == 0 && !tls_wait_for_text(server->log_path, line, 10000)) result = -ETIMEDOUT;
    intake_producer_close(producer);
    return result;
}

static void test_verify(void) {
    struct tls_peer server;
    char why[512];
    REQUIRE(tls_peer_s_server(&server, certs, "server.pem", "server.key", NULL));
    char address[64];
    /* The host of the address: an IP address, matched against the IP SAN. */
    CHECK(verify_attempt(&server, NULL, NULL, why, sizeof(why)) == 0);
    snprintf(address, sizeof(address), "localhost:%u", server.port);
    CHECK(verify_attempt(&server, address, NULL, why, sizeof(why)) == 0);
    CHECK(verify_attempt(&server, NULL, "localhost", why, sizeof(why)) == 0);
    CHECK(verify_attempt(&server, NULL, "other.test", why, sizeof(why)) == -ECONNABORTED);
    printf("wrong name: %s\n", why);
    CHECK(strstr(why, "intake's certificate /CN=intake-server (depth 0) did not verify: hostname "
                      "mismatch (it does not name 'other.test')") != NULL);
    CHECK(verify_attempt(&server, NULL, "127.0.0.2", why, sizeof(why)) == -ECONNABORTED);
    CHECK(strstr(why, "IP address mismatch") != NULL);
    /* Another CA. */
    struct intake_producer_config config = tls_config(server.address);
    config.tls_ca_file = tls_path(certs, "other-ca.pem");
    struct intake_producer *producer = NULL;
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -ECONNABORTED);
    printf("another CA: %s\n", why);
    CHECK(strstr(why, "did not verify: unable to get local issuer certificate (not signed by a "
                      "CA in tls_ca_file)") != NULL);
    /* The idempotent producer retries, and says why in last_error. */
    check_idempotent_retries(&config, "unable to get local issuer certificate", 300);
    tls_peer_stop(&server);
    tls_peer_remove_log(&server);

    /* An expired certificate. */
    REQUIRE(tls_peer_s_server(&server, certs, "expired-server.pem", "expired-server.key", NULL));
    CHECK(verify_attempt(&server, NULL, NULL, why, sizeof(why)) == -ECONNABORTED);
    printf("expired: %s\n", why);
    CHECK(strstr(why, "did not verify: certificate has expired") != NULL);
    tls_peer_stop(&server);
    tls_peer_remove_log(&server);

    /* -Verify: a client certificate is required and checked; ours passes. */
    const char *const verify[] = {"-Verify", "1", "-CAfile", tls_path(certs, "ca.pem"), NULL};
    REQUIRE(tls_peer_s_server(&server, certs, "server.pem", "server.key", verify));
    config = tls_config(server.address);
    config.acks = false;
    config.tls_cert_file = tls_path(certs, "client.pem");
    config.tls_key_file = tls_path(certs, "client.key");
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    CHECK(intake_producer_send_raw(producer, "mutual-ok\n", 10, NULL) == 0);
    CHECK(intake_producer_flush(producer) == 0);
    CHECK(tls_wait_for_text(server.log_path, "mutual-ok", 10000));
    intake_producer_close(producer);
    tls_peer_stop(&server);
    tls_peer_remove_log(&server);
}

/* ---- key_update: openssl s_server sees the KeyUpdates and decrypts what follows ---- */

static void test_key_update_s_server(void) {
    char messages[320];
    snprintf(messages, sizeof(messages), "%s/s_server-messages.out", certs);
    const char *const extra[] = {"-msg", "-msgfile", messages, NULL};
    struct tls_peer server;
    REQUIRE(tls_peer_s_server(&server, certs, "server.pem", "server.key", extra));
    struct intake_producer_config config = tls_config(server.address);
    config.acks = false;
    config.batch_bytes = 512;
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    producer->tls.key_update_records = 64;
    /* Lines "line-N\n" in records of about 512 bytes: 300 records, 4 KeyUpdates. */
    for (int number = 1; number <= 15000; number++) {
        char line[32];
        int length = snprintf(line, sizeof(line), "line-%d\n", number);
        REQUIRE(intake_producer_send_raw(producer, line, (size_t)length, NULL) == 0);
    }
    REQUIRE(intake_producer_flush(producer) == 0);
    uint64_t updates = producer->tls.key_updates;
    /* s_server acknowledges nothing: the producer stays open until s_server has printed the
     * last line (a close with bytes still unsent can lose them, TLS or not). */
    CHECK(tls_wait_for_text(server.log_path, "line-15000\n", 10000));
    intake_producer_close(producer);
    tls_peer_stop(&server);
    /* The raw records carry a length prefix before each line; every line arrived in order. */
    FILE *file = fopen(server.log_path, "r");
    REQUIRE(file != NULL);
    static char content[1 << 20];
    size_t length = fread(content, 1, sizeof(content) - 1, file);
    content[length] = '\0';
    fclose(file);
    int next = 1;
    for (const char *at = strstr(content, "line-"); at; at = strstr(at + 1, "line-"))
        if (atoi(at + 5) == next) next++;
    CHECK(next == 15001);
    int seen = tls_count_text(messages, "KeyUpdate");
    printf("KeyUpdates sent %llu, seen by s_server %d\n", (unsigned long long)updates, seen);
    CHECK(updates >= 4);
    CHECK((uint64_t)seen == updates);
    unlink(messages);
    tls_peer_remove_log(&server);
}

/* ---- files and configurations ---- */

static int open_with_files(const char *ca, const char *certificate, const char *key,
                           const char *name, char *why, size_t capacity) {
    struct intake_producer_config config = {.address = "127.0.0.1:9", .io_timeout_ms = 500};
    config.tls_ca_file = ca;
    config.tls_cert_file = certificate;
    config.tls_key_file = key;
    config.tls_server_name = name;
    config.producer_id = "files"; /* idempotent: open needs no server */
    config.producer_id_length = 5;
    struct intake_producer *producer = NULL;
    int result = intake_producer_open(&config, &producer, why, capacity);
    if (result == 0) intake_producer_close(producer);
    return result;
}

static void test_files(void) {
    char why[512];
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.pem", certs);
    CHECK(open_with_files(missing, NULL, NULL, NULL, why, sizeof(why)) == -ENOENT);
    CHECK(strstr(why, "tls_ca_file") && strstr(why, "No such file or directory"));
    CHECK(open_with_files(tls_path(certs, "ca.key"), NULL, NULL, NULL, why, sizeof(why)) ==
          -EINVAL);
    printf("a key as the CA file: %s\n", why);
    CHECK(strstr(why, "tls_ca_file") && strstr(why, "no usable PEM certificate"));
    CHECK(open_with_files(tls_path(certs, "ca.pem"), tls_path(certs, "client.pem"),
                          tls_path(certs, "server.key"), NULL, why, sizeof(why)) == -EINVAL);
    printf("a key of another certificate: %s\n", why);
    CHECK(strstr(why, "does not match tls_cert_file") != NULL);
    CHECK(open_with_files(tls_path(certs, "ca.pem"), tls_path(certs, "client.pem"), missing, NULL,
                          why, sizeof(why)) == -ENOENT);
    CHECK(strstr(why, "tls_key_file") != NULL);
    char command[1024];
    snprintf(command, sizeof(command),
             "openssl pkey -in %s -aes256 -passout pass:secret -out %s/encrypted.key",
             tls_path(certs, "client.key"), certs);
    REQUIRE(system(command) == 0);
    CHECK(open_with_files(tls_path(certs, "ca.pem"), tls_path(certs, "client.pem"),
                          tls_path(certs, "encrypted.key"), NULL, why, sizeof(why)) == -EINVAL);
    printf("a passphrase-protected key: %s\n", why);
    CHECK(strstr(why, "tls_key_file") && strstr(why, "unencrypted"));
    CHECK(open_with_files(NULL, tls_path(certs, "client.pem"), tls_path(certs, "client.key"), NULL,
                          why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "TLS needs tls_ca_file") != NULL);
    CHECK(open_with_files(tls_path(certs, "ca.pem"), tls_path(certs, "client.pem"), NULL, NULL, why,
                          sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "tls_cert_file and tls_key_file go together") != NULL);
    CHECK(open_with_files(tls_path(certs, "ca.pem"), NULL, NULL, "", why, sizeof(why)) == -EINVAL);
    CHECK(open_with_files(tls_path(certs, "ca.pem"), tls_path(certs, "client.pem"),
                          tls_path(certs, "client.key"), "intake.test", why, sizeof(why)) == 0);
}

/* ---- stalled: a peer that never answers the handshake ---- */

static void test_stalled(void) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in bound = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof(bound);
    REQUIRE(bind(listener, (struct sockaddr *)&bound, sizeof(bound)) == 0);
    REQUIRE(listen(listener, 16) == 0);
    REQUIRE(getsockname(listener, (struct sockaddr *)&bound, &length) == 0);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", ntohs(bound.sin_port));
    struct intake_producer_config config = tls_config(address);
    config.io_timeout_ms = 300;
    struct intake_producer *producer = NULL;
    char why[256];
    uint64_t start = intake_now_ns();
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -ETIMEDOUT);
    CHECK(intake_now_ns() - start >= 250000000ull);
    CHECK(strstr(why, "TLS handshake with") && strstr(why, "no answer within 300 ms"));
    /* Idempotent: the handshake's deadline drops the connection, and it is retried. */
    check_idempotent_retries(&config, "TLS handshake with", 800);
    close(listener);
}

/* ---- daemon: intaked's own TLS listener ---- */

static struct intake_producer_config mutual_config(const char *address) {
    struct intake_producer_config config = tls_config(address);
    config.tls_cert_file = tls_path(certs, "client.pem");
    config.tls_key_file = tls_path(certs, "client.key");
    config.tls_server_name = "localhost";
    return config;
}

static void test_daemon_plain(const char *directory, const char *address) {
    struct intake_producer_config config = mutual_config(address);
    struct intake_producer *producer = NULL;
    char why[256];
    REQUIRE(open_producer(&config, &producer, why, sizeof(why)) == 0);
    for (uint64_t number = 1; number <= 20000; number++)
        REQUIRE(send_numbered(producer, "d-plain", "d", number) == 0);
    CHECK(intake_producer_wait_acks(producer, 20000, 20000) == 0);
    /* 64 KiB records: each spans TLS records and the daemon's buffers. */
    static char big[65536];
    for (int index = 0; index < 200; index++) {
        memset(big, 'a' + index % 26, sizeof(big));
        REQUIRE(intake_producer_send(producer, "d-big", NULL, 0, big, sizeof(big), 0, NULL) == 0);
    }
    CHECK(intake_producer_wait_acks(producer, 20200, 20000) == 0);
    intake_producer_close(producer);
    CHECK(log_holds_values(directory, "d-plain", "d", 20000));
    CHECK(producer_util_count_logged(directory, "d-big") == 200);
    char command[1600];
    char output[4096];
    snprintf(command, sizeof(command),
             "seq 1 300 | sed 's/^/cli-/' | %s --connect %s --topic d-cli --acks --tls-ca %s "
             "--tls-cert %s --tls-key %s --tls-server-name localhost 2>&1",
             test_program_path("intake-produce"), address, tls_path(certs, "ca.pem"),
             tls_path(certs, "client.pem"), tls_path(certs, "client.key"));
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    CHECK(strstr(output, "acked 300 records (last sequence 300)") != NULL);
    CHECK(log_holds_values(directory, "d-cli", "cli", 300));
}

static void test_daemon_idempotent(const char *directory, struct daemon *daemon,
                                   const char *const *flags, const char *address) {
    struct reports reports = {0};
    struct intake_producer_config config = mutual_config(address);
    struct intake_producer *producer = open_idempotent(&config, "d-idem", &reports);
    static uint64_t sent[4000];
    for (int index = 0; index < 4000; index++) {
        REQUIRE(producer_util_send(producer, "d-idem", &sent[index]) == 0);
        if (index == 2000) {
            /* Half acked, the rest written or about to be: then the daemon dies. */
            REQUIRE(intake_producer_wait_acks(producer, 1000, 20000) == 0);
            kill(daemon->pid, SIGKILL);
            waitpid(daemon->pid, NULL, 0);
            REQUIRE(daemon_start_port(daemon, directory, flags, daemon->port));
        }
    }
    int waited = intake_producer_wait_acks(producer, 4000, 30000);
    if (waited != 0) fprintf(stderr, "d-idem: %s\n", intake_producer_last_error(producer));
    CHECK(waited == 0);
    struct intake_producer_stats stats;
    intake_producer_stats(producer, &stats);
    intake_producer_close(producer);
    CHECK(reports.ok == 4000);
    CHECK(stats.connections >= 2);
    producer_util_check_log(directory, "d-idem", "d-idem", sent, 4000);
}

static void test_daemon(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-tls-daemon");
    /* Port 0 at first: intaked binds one and the counters region names it; the restarts
     * (SIGKILL, same flags) then ask for that port again. */
    char tls_listen[64] = "127.0.0.1:0";
    /* The flags outlive tls_path's ring of buffers (the restart reuses them): copies. */
    char certificate[320], key[320], client_ca[320];
    snprintf(certificate, sizeof(certificate), "%s", tls_path(certs, "server.pem"));
    snprintf(key, sizeof(key), "%s", tls_path(certs, "server.key"));
    snprintf(client_ca, sizeof(client_ca), "%s", tls_path(certs, "ca.pem"));
    const char *const flags[] = {
        "--backend",       "pbuf",       "--log-size", "32M",       "--tls-listen",
        tls_listen,        "--tls-cert", certificate,  "--tls-key", key,
        "--tls-client-ca", client_ca,    NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    REQUIRE(daemon.tls_port != 0);
    snprintf(tls_listen, sizeof(tls_listen), "%s", daemon.tls_address);
    test_daemon_plain(directory, tls_listen);
    test_daemon_idempotent(directory, &daemon, flags, tls_listen);
    char error[512];
    CHECK(mutual_attempt(tls_listen, NULL, NULL, error, sizeof(error)) == -ECONNABORTED);
    printf("intaked, no client certificate: %s\n", error);
    CHECK(mutual_attempt(tls_listen, "other-client.pem", "other-client.key", error,
                         sizeof(error)) == -ECONNABORTED);
    printf("intaked, a client certificate from another CA: %s\n", error);
    CHECK(producer_util_count_logged(directory, "tls-mutual") == 0);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void remove_certs(void) {
    tls_certs_remove(certs);
}

int main(void) {
    /* Before OpenSSL allocates anything in this process. */
    REQUIRE(CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free) == 1);
    REQUIRE(tls_certs_make(certs, sizeof(certs), "producer"));
    /* Also when a REQUIRE ends the test early. */
    atexit(remove_certs);
    test_files();
    test_verify();
    test_key_update_s_server();
    test_stalled();
    test_mutual();
    test_terminated();
    test_daemon();
    return test_finish();
}
