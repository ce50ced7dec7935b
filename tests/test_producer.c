/*
 * test_producer.c: the producer library and intake-produce against a tiny in-test server.
 *
 * The server (one thread, plain sockets, 127.0.0.1:0) serves one connection per scenario: it
 * reads delimited Records, decodes each with nanopb (unknown fields are skipped), hashes their
 * topic, key and value so the test can compare contents exactly, counts records per read (to see
 * batching), and answers cumulative OK Acks after each read. A record whose topic is not valid
 * UTF-8 is answered with a REJECTED Ack, as intaked does, and the connection is closed. It knows
 * no Hello: an idempotent producer meets it as it would an intake without producer ids. The
 * idempotent producer's behaviour against real daemons is in test_producer_recovery and
 * test_producer_idempotent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pb_decode.h>

#include "common.h"
#include "harness.h"
#include "intake.pb.h"
#include "intake/producer.h"
#include "varint.h"

#define SERVER_BUFFER_BYTES (1024 * 1024)

struct server {
    int listen_fd;
    uint16_t port;
    bool silent; /* never ack */
    pthread_t thread;
    /* Results, read by the test after join. */
    uint64_t records;
    uint64_t reads;
    uint64_t max_records_per_read;
    uint64_t last_sequence;
    uint64_t order_errors;
    uint64_t content_hash;
    uint64_t rejected;
};

static uint64_t hash_bytes(uint64_t hash, const uint8_t *bytes, size_t length) {
    for (size_t index = 0; index < length; index++) hash = (hash ^ bytes[index]) * 0x100000001b3ull;
    return hash;
}

struct decoded_field {
    uint8_t bytes[256 * 1024];
    size_t length;
};

static bool decode_into(pb_istream_t *stream, const pb_field_t *field, void **argument) {
    struct decoded_field *out = *argument;
    size_t length = stream->bytes_left;
    if (length > sizeof(out->bytes)) return false;
    out->length = length;
    return pb_read(stream, out->bytes, length);
}

static void send_ack(int fd, uint64_t sequence, uint32_t status, const char *detail) {
    uint8_t ack[300];
    size_t length = 0;
    ack[length++] = 0x08;
    length += varint_encode(sequence, ack + length);
    if (status != 0) {
        ack[length++] = 0x10;
        length += varint_encode(status, ack + length);
        size_t detail_length = strlen(detail);
        ack[length++] = 0x1a;
        length += varint_encode(detail_length, ack + length);
        memcpy(ack + length, detail, detail_length);
        length += detail_length;
    }
    uint8_t frame[310];
    size_t prefix = varint_encode(length, frame);
    memcpy(frame + prefix, ack, length);
    if (send(fd, frame, prefix + length, MSG_NOSIGNAL) < 0) perror("test server: send");
}

/* Decodes and checks one record; returns 0, or -1 after rejecting it. */
static int server_record(struct server *server, int fd, const uint8_t *bytes, size_t length) {
    static struct decoded_field topic, key, value;
    topic.length = key.length = value.length = 0;
    intake_v1_Record record = intake_v1_Record_init_zero;
    record.topic.funcs.decode = decode_into;
    record.topic.arg = &topic;
    record.key.funcs.decode = decode_into;
    record.key.arg = &key;
    record.value.funcs.decode = decode_into;
    record.value.arg = &value;
    pb_istream_t stream = pb_istream_from_buffer(bytes, length);
    uint32_t utf8_state = 0;
    const char *problem = NULL;
    if (!pb_decode(&stream, intake_v1_Record_fields, &record))
        problem = "record does not decode";
    else if (topic.length == 0)
        problem = "record has no topic";
    else if (!intake_utf8_feed(&utf8_state, topic.bytes, topic.length) || utf8_state != 0)
        problem = "topic is not valid UTF-8";
    if (problem != NULL) {
        server->rejected++;
        send_ack(fd, server->last_sequence, intake_v1_Ack_Status_REJECTED, problem);
        return -1;
    }
    if (record.sequence != 0 && record.sequence <= server->last_sequence) server->order_errors++;
    if (record.sequence != 0) server->last_sequence = record.sequence;
    server->content_hash = hash_bytes(server->content_hash, topic.bytes, topic.length);
    server->content_hash = hash_bytes(server->content_hash, key.bytes, key.length);
    server->content_hash = hash_bytes(server->content_hash, value.bytes, value.length);
    server->records++;
    return 0;
}

/* Handles every complete frame in buffer[0..fill); returns bytes consumed or -1 to close. */
static long server_frames(struct server *server, int fd, uint8_t *buffer, size_t fill,
                          uint64_t *records_this_read) {
    size_t position = 0;
    for (;;) {
        uint64_t length = 0;
        size_t prefix = 0;
        if (varint_decode(buffer + position, fill - position, &length, &prefix) != VARINT_OK) break;
        if (fill - position - prefix < length) break;
        if (server_record(server, fd, buffer + position + prefix, (size_t)length) < 0) return -1;
        (*records_this_read)++;
        position += prefix + (size_t)length;
    }
    return (long)position;
}

static void *server_run(void *argument) {
    struct server *server = argument;
    int fd = accept(server->listen_fd, NULL, NULL);
    if (fd < 0) return NULL;
    uint8_t *buffer = malloc(SERVER_BUFFER_BYTES);
    size_t fill = 0;
    uint64_t acked = 0;
    for (;;) {
        ssize_t received = recv(fd, buffer + fill, SERVER_BUFFER_BYTES - fill, 0);
        if (received <= 0) break;
        server->reads++;
        fill += (size_t)received;
        uint64_t records_this_read = 0;
        long consumed = server_frames(server, fd, buffer, fill, &records_this_read);
        if (consumed < 0) break;
        memmove(buffer, buffer + consumed, fill - (size_t)consumed);
        fill -= (size_t)consumed;
        if (records_this_read > server->max_records_per_read)
            server->max_records_per_read = records_this_read;
        /* Cumulative: one Ack per read covers every record it completed. */
        if (!server->silent && server->last_sequence > acked) {
            acked = server->last_sequence;
            send_ack(fd, acked, intake_v1_Ack_Status_OK, "");
        }
    }
    free(buffer);
    close(fd);
    return NULL;
}

static void server_start(struct server *server, bool silent) {
    memset(server, 0, sizeof(*server));
    server->silent = silent;
    server->content_hash = 0xcbf29ce484222325ull;
    server->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(server->listen_fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(server->listen_fd, (struct sockaddr *)&address, sizeof(address)) == 0);
    REQUIRE(listen(server->listen_fd, 4) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(getsockname(server->listen_fd, (struct sockaddr *)&address, &length) == 0);
    server->port = ntohs(address.sin_port);
    REQUIRE(pthread_create(&server->thread, NULL, server_run, server) == 0);
}

static void server_join(struct server *server) {
    REQUIRE(pthread_join(server->thread, NULL) == 0);
    close(server->listen_fd);
}

static struct intake_producer *producer_to(struct server *server, bool acks, uint32_t batch) {
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", server->port);
    struct intake_producer_config config = {
        .address = address, .batch_bytes = batch, .io_timeout_ms = 2000, .acks = acks};
    struct intake_producer *producer = NULL;
    char why[256];
    int result = intake_producer_open(&config, &producer, why, sizeof(why));
    if (result < 0) fprintf(stderr, "open: %s\n", why);
    REQUIRE(result == 0);
    return producer;
}

/* Many small records with acks: order, exact contents, batching, cumulative acks. */
static void test_send_flush_wait(void) {
    struct server server;
    server_start(&server, false);
    struct intake_producer *producer = producer_to(&server, true, 0);
    uint64_t expected_hash = 0xcbf29ce484222325ull;
    uint64_t sequence = 0;
    for (uint32_t index = 0; index < 5000; index++) {
        char value[64];
        int value_length = snprintf(value, sizeof(value), "value-%u", index);
        const char *topic = index % 2 ? "orders" : "payments.é";
        CHECK(intake_producer_send(producer, topic, "k", 1, value, (size_t)value_length, 0,
                                   &sequence) == 0);
        expected_hash = hash_bytes(expected_hash, (const uint8_t *)topic, strlen(topic));
        expected_hash = hash_bytes(expected_hash, (const uint8_t *)"k", 1);
        expected_hash = hash_bytes(expected_hash, (const uint8_t *)value, (size_t)value_length);
        if (sequence != index + 1u) break;
    }
    CHECK(sequence == 5000);
    CHECK(intake_producer_last_sequence(producer) == 5000);
    CHECK(intake_producer_wait_acks(producer, 5000, 5000) == 0);
    CHECK(intake_producer_acked(producer) == 5000);
    /* Waiting for a sequence never sent is an argument error, not a hang. */
    CHECK(intake_producer_wait_acks(producer, 5001, 100) == -EINVAL);
    intake_producer_close(producer);
    server_join(&server);
    CHECK(server.records == 5000);
    CHECK(server.order_errors == 0);
    CHECK(server.last_sequence == 5000);
    CHECK(server.content_hash == expected_hash);
    /* Batching: far fewer reads than records, several records per read. */
    CHECK(server.max_records_per_read > 10);
    CHECK(server.reads < 500);
}

/* Raw records (odd field order, unknown fields) pass through; a REJECTED Ack becomes -EPROTO. */
static void test_raw_and_rejected(void) {
    struct server server;
    server_start(&server, false);
    struct intake_producer *producer = producer_to(&server, true, 0);
    uint64_t sequence = 0;
    CHECK(intake_producer_send(producer, "t", NULL, 0, "v", 1, 0, &sequence) == 0);
    CHECK(sequence == 1);
    /* sequence=2 first, unknown field 9 (varint) and 10 (bytes), then topic "t". */
    static const uint8_t odd[] = {0x28, 0x02, 0x48, 0x07, 0x52, 0x02, 'h', 'i', 0x0a, 0x01, 't'};
    CHECK(intake_producer_send_raw(producer, odd, sizeof(odd), &sequence) == 0);
    CHECK(sequence == 2);
    CHECK(intake_producer_wait_acks(producer, 2, 5000) == 0);
    /* Next send continues after the raw record's sequence. */
    CHECK(intake_producer_send(producer, "t", NULL, 0, NULL, 0, 0, &sequence) == 0);
    CHECK(sequence == 3);
    static const uint8_t bad_topic[] = {0x0a, 0x02, 0xc3, 0x28, 0x28, 0x04};
    CHECK(intake_producer_send_raw(producer, bad_topic, sizeof(bad_topic), &sequence) == 0);
    CHECK(sequence == 4);
    CHECK(intake_producer_wait_acks(producer, 4, 5000) == -EPROTO);
    CHECK(strcmp(intake_producer_last_error(producer), "REJECTED: topic is not valid UTF-8") == 0);
    CHECK(intake_producer_acked(producer) == 3);
    /* Sticky: the connection is over. */
    CHECK(intake_producer_send(producer, "t", NULL, 0, NULL, 0, 0, NULL) == -EPROTO);
    intake_producer_close(producer);
    server_join(&server);
    CHECK(server.records == 3);
    CHECK(server.rejected == 1);
}

/* Without acks: sequence 0; local topic checks; a record larger than the batch streams through. */
static void test_no_acks_and_limits(void) {
    struct server server;
    server_start(&server, false);
    struct intake_producer *producer = producer_to(&server, false, 4096);
    uint64_t sequence = 99;
    CHECK(intake_producer_send(producer, "t", NULL, 0, "x", 1, 1, &sequence) == 0);
    CHECK(sequence == 0);
    CHECK(intake_producer_send(producer, "", NULL, 0, "x", 1, 1, NULL) == -EINVAL);
    CHECK(strcmp(intake_producer_last_error(producer), "topic is empty") == 0);
    char long_topic[300];
    memset(long_topic, 'a', sizeof(long_topic) - 1);
    long_topic[sizeof(long_topic) - 1] = '\0';
    CHECK(intake_producer_send(producer, long_topic, NULL, 0, "x", 1, 1, NULL) == -EINVAL);
    CHECK(intake_producer_send(producer, "\xff", NULL, 0, "x", 1, 1, NULL) == -EINVAL);
    long_topic[255] = '\0';
    CHECK(intake_producer_send(producer, long_topic, NULL, 0, "x", 1, 1, NULL) == 0);
    static uint8_t big[200 * 1024];
    for (size_t index = 0; index < sizeof(big); index++) big[index] = (uint8_t)(index * 7);
    CHECK(intake_producer_send(producer, "big", "key", 3, big, sizeof(big), 0, NULL) == 0);
    CHECK(intake_producer_send(producer, "t", NULL, 0, "after", 5, 0, NULL) == 0);
    CHECK(intake_producer_flush(producer) == 0);
    intake_producer_close(producer);
    server_join(&server);
    CHECK(server.records == 4);
    CHECK(server.last_sequence == 0);
    CHECK(server.rejected == 0);
}

/* A server that never acks: wait_acks times out; a closed port refuses the connection. */
static void test_timeout_and_refused(void) {
    struct server server;
    server_start(&server, true);
    struct intake_producer *producer = producer_to(&server, true, 0);
    CHECK(intake_producer_send(producer, "t", NULL, 0, "x", 1, 0, NULL) == 0);
    uint64_t started = intake_now_ns();
    CHECK(intake_producer_wait_acks(producer, 1, 100) == -ETIMEDOUT);
    CHECK(intake_now_ns() - started >= 90000000u);
    uint16_t port = server.port;
    intake_producer_close(producer);
    server_join(&server);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", port);
    struct intake_producer_config config = {.address = address, .io_timeout_ms = 1000};
    char why[256];
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -ECONNREFUSED);
    CHECK(producer == NULL);
    CHECK(strstr(why, "refused") != NULL);
    config.address = "no-port-here";
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -EINVAL);
}

/* An idempotent producer against a server that knows no Hello (as an intake before producer
 * ids would): the Hello is a record without a topic, REJECTED, and that is final (sticky). */
static void test_hello_refused(void) {
    struct server server;
    server_start(&server, false);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", server.port);
    struct intake_producer_config config = {
        .address = address, .io_timeout_ms = 2000, .producer_id = "p", .producer_id_length = 1};
    struct intake_producer *producer = NULL;
    char why[256];
    int opened = intake_producer_open(&config, &producer, why, sizeof(why));
    if (opened != 0) fprintf(stderr, "open: %s\n", why);
    REQUIRE(opened == 0);
    /* The refusal may already have come during open: then the send returns it. */
    uint64_t sequence = 0;
    int sent = intake_producer_send(producer, "t", NULL, 0, "v", 1, 0, &sequence);
    CHECK(sent == 0 || sent == -EPROTO);
    CHECK(sent != 0 || sequence == 1);
    CHECK(intake_producer_wait_acks(producer, sent == 0 ? 1 : 0, 5000) == -EPROTO);
    CHECK(strcmp(intake_producer_last_error(producer),
                 "intake refused the Hello: REJECTED: record has no topic") == 0);
    CHECK(intake_producer_send(producer, "t", NULL, 0, "v", 1, 0, NULL) == -EPROTO);
    size_t id_length = 0;
    const char *id = intake_producer_id(producer, &id_length);
    CHECK(id_length == 1 && id[0] == 'p');
    intake_producer_close(producer);
    server_join(&server);
    CHECK(server.records == 0);
    CHECK(server.rejected == 1);
    /* Bad configurations fail open with a reason. */
    config.producer_id_length = 65;
    CHECK(intake_producer_open(&config, &producer, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "producer_id must be 1 to 64 bytes") != NULL);
}

/* intake-produce: stdin lines with --acks, synthetic records, and a REJECTED ack's one-line
 * error. */
static void test_program(void) {
    const char *program = test_program_path("intake-produce");
    if (access(program, X_OK) != 0) {
        printf("skipping intake-produce checks: %s not built\n", program);
        return;
    }
    char command[1024];
    char output[4096];
    struct server server;
    server_start(&server, false);
    snprintf(command, sizeof(command),
             "printf 'one\\ntwo\\nthree\\n' | %s --connect 127.0.0.1:%u --topic lines --acks 2>&1",
             program, server.port);
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    server_join(&server);
    CHECK(strstr(output, "acked 3 records (last sequence 3)") != NULL);
    CHECK(server.records == 3);
    uint64_t expected = 0xcbf29ce484222325ull;
    static const char *const lines[] = {"one", "two", "three"};
    for (int index = 0; index < 3; index++) {
        expected = hash_bytes(expected, (const uint8_t *)"lines", 5);
        expected = hash_bytes(expected, (const uint8_t *)lines[index], strlen(lines[index]));
    }
    CHECK(server.content_hash == expected);

    server_start(&server, false);
    snprintf(command, sizeof(command),
             "%s --connect localhost:%u --topic gen --count 20000 --size 100 --acks 2>&1", program,
             server.port);
    CHECK(test_run_command(command, output, sizeof(output)) == 0);
    server_join(&server);
    CHECK(strstr(output, "acked 20000 records (last sequence 20000)") != NULL);
    CHECK(server.records == 20000);

    /* Delimited input: one good record (sequence 1), then one with a non-UTF-8 topic. */
    server_start(&server, false);
    snprintf(command, sizeof(command),
             "printf '\\005\\012\\001t\\050\\001\\006\\012\\002\\303\\050\\050\\002' | "
             "%s --connect 127.0.0.1:%u --delimited --acks 2>&1",
             program, server.port);
    CHECK(test_run_command(command, output, sizeof(output)) == 1);
    server_join(&server);
    CHECK(strcmp(output, "intake-produce: REJECTED: topic is not valid UTF-8\n") == 0);
    CHECK(server.records == 1);

    snprintf(command, sizeof(command), "%s --topic x 2>&1", program);
    CHECK(test_run_command(command, output, sizeof(output)) == 2);
}

int main(void) {
    test_send_flush_wait();
    test_raw_and_rejected();
    test_no_acks_and_limits();
    test_timeout_and_refused();
    test_hello_refused();
    test_program();
    return test_finish();
}
