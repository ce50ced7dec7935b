/*
 * test_producer_recovery.c: the idempotent producer library against a real intaked that fails
 * under it (issue 12). Every check ends by reading the topics' logs with the consumer library:
 * each record the producer sent is there exactly once, in order per topic, with no gap.
 *
 *   kill_restart:     a producer thread streams to three topics; intaked is SIGKILLed mid-stream
 *                     and restarted on the same --shm-dir and port, later stopped with SIGTERM
 *                     (SHUTTING_DOWN) and restarted again. The producer resumes by itself.
 *   connection_reset: the producer talks through a TCP proxy in the test that first swallows
 *                     intake's acks (records committed, producer unaware) and then resets both
 *                     sockets (SO_LINGER 0: RST). The producer reconnects, learns from the Hello
 *                     what is committed, resends the rest; intake drops what it already has.
 *                     Last, acks swallowed and intaked SIGKILLed: the restarted one knows
 *                     nothing (Hello answer 0), and drops every resent committed record.
 *   tool_live:        intake-produce --producer-id on a live stdin stream across a SIGKILL and
 *                     restart of intaked.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "daemon_util.h"
#include "producer_util.h"

#define KILL_RECORDS 60000u
#define KILL_TOPICS  3u

static const char *const kill_topics[KILL_TOPICS] = {"kill.a", "kill.b", "kill.c"};

struct kill_producer {
    const char *address;
    atomic_uint_fast64_t sent;
    atomic_int done;
    int result;
    char error[640];
    uint64_t *sequences[KILL_TOPICS];
    uint64_t counts[KILL_TOPICS];
    struct reports reports;
    struct intake_producer_stats stats;
};

static void *kill_produce(void *argument) {
    struct kill_producer *self = argument;
    struct intake_producer_config config = {
        .address = self->address,
        .producer_id = "kill-restart",
        .producer_id_length = strlen("kill-restart"),
        .io_timeout_ms = 5000,
        .reconnect_backoff_min_ms = 10,
        .reconnect_backoff_max_ms = 200,
        .on_delivery = reports_collect,
        .delivery_context = &self->reports,
    };
    struct intake_producer *producer = NULL;
    self->result = intake_producer_open(&config, &producer, self->error, sizeof(self->error));
    for (uint32_t index = 0; self->result == 0 && index < KILL_RECORDS; index++) {
        uint32_t topic = index % KILL_TOPICS;
        uint64_t sequence = 0;
        self->result = producer_util_send(producer, kill_topics[topic], &sequence);
        /* A full window while intaked is down pushes back for io_timeout_ms: keep trying. */
        for (int again = 0; self->result == -EAGAIN && again < 20; again++)
            self->result = producer_util_send(producer, kill_topics[topic], &sequence);
        if (self->result != 0) break;
        self->sequences[topic][self->counts[topic]++] = sequence;
        atomic_store(&self->sent, index + 1);
        /* Paced so that the kills land mid-stream. */
        if (index % 200 == 199) {
            int polled = intake_producer_poll(producer, 1);
            if (polled < 0) self->result = polled;
        }
    }
    if (self->result == 0)
        self->result =
            intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 60000);
    if (producer != NULL) {
        if (self->result != 0)
            snprintf(self->error, sizeof(self->error), "%s", intake_producer_last_error(producer));
        intake_producer_stats(producer, &self->stats);
        intake_producer_close(producer);
    }
    atomic_store(&self->done, 1);
    return NULL;
}

static void wait_sent(struct kill_producer *self, uint64_t target) {
    for (int step = 0; step < 60000 && atomic_load(&self->sent) < target; step++) {
        if (atomic_load(&self->done)) return;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

static void test_kill_restart(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-kill");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "8M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    uint16_t port = daemon.port;
    static struct kill_producer self;
    memset(&self, 0, sizeof(self));
    self.address = daemon.address;
    for (uint32_t topic = 0; topic < KILL_TOPICS; topic++) {
        self.sequences[topic] = calloc(KILL_RECORDS, sizeof(uint64_t));
        REQUIRE(self.sequences[topic] != NULL);
    }
    char address[64];
    snprintf(address, sizeof(address), "%s", daemon.address);
    self.address = address;
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, kill_produce, &self) == 0);

    wait_sent(&self, KILL_RECORDS / 3);
    uint64_t sent_at_kill = atomic_load(&self.sent);
    kill(daemon.pid, SIGKILL);
    int status = 0;
    waitpid(daemon.pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    REQUIRE(daemon_start_port(&daemon, directory, flags, port));

    wait_sent(&self, 2 * KILL_RECORDS / 3);
    uint64_t sent_at_stop = atomic_load(&self.sent);
    CHECK(daemon_stop(&daemon) == 0);
    uint64_t duplicates = DAEMON_WORKER_COUNTER(&daemon, records_duplicate);
    REQUIRE(daemon_start_port(&daemon, directory, flags, port));

    REQUIRE(pthread_join(thread, NULL) == 0);
    if (self.result != 0) fprintf(stderr, "producer: %s\n", self.error);
    CHECK(self.result == 0);
    printf("kill_restart: killed at %" PRIu64 " sent, stopped at %" PRIu64 "; connections=%" PRIu64
           " disconnects=%" PRIu64 " resent=%" PRIu64 " last_hello=%" PRIu64 "\n",
           sent_at_kill, sent_at_stop, self.stats.connections, self.stats.disconnects,
           self.stats.resent, self.stats.last_hello_sequence);
    CHECK(sent_at_kill < KILL_RECORDS);
    CHECK(self.stats.connections >= 3);
    CHECK(self.stats.disconnects >= 2);
    CHECK(self.stats.pending == 0);
    CHECK(self.reports.ok == KILL_RECORDS);
    CHECK(self.reports.order_errors == 0);
    CHECK(self.reports.rejected + self.reports.internal + self.reports.timed_out == 0);
    for (uint32_t topic = 0; topic < KILL_TOPICS; topic++) {
        producer_util_check_log(directory, kill_topics[topic], "kill-restart",
                                self.sequences[topic], self.counts[topic]);
        free(self.sequences[topic]);
    }
    CHECK(daemon_stop(&daemon) == 0);
    duplicates += DAEMON_WORKER_COUNTER(&daemon, records_duplicate);
    printf("kill_restart: the restarted daemons dropped %" PRIu64 " duplicates\n", duplicates);
    daemon_directory_remove(directory);
}

/* ------------------------------------------------------------ the resetting proxy --- */

struct proxy {
    int listen_fd;
    uint16_t port;
    uint16_t target_port;
    atomic_int stop;
    atomic_int swallow_acks; /* drop intake -> producer bytes */
    atomic_int reset_now;    /* RST both sides of the current pair */
    atomic_int resets;
    atomic_uint_fast64_t swallowed_bytes;
    pthread_t thread;
};

static void proxy_abort(int fd) {
    struct linger linger = {1, 0}; /* close sends RST */
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
    close(fd);
}

static bool proxy_forward(int from, int to, bool swallow, struct proxy *proxy) {
    static uint8_t buffer[1 << 16];
    ssize_t got = recv(from, buffer, sizeof(buffer), 0);
    if (got <= 0) return false;
    if (swallow) {
        atomic_fetch_add(&proxy->swallowed_bytes, (uint64_t)got);
        return true;
    }
    for (ssize_t done = 0; done < got;) {
        ssize_t put = send(to, buffer + done, (size_t)(got - done), MSG_NOSIGNAL);
        if (put <= 0) return false;
        done += put;
    }
    return true;
}

/* One producer connection at a time, forwarded to intaked until either side closes, the test
 * asks for a reset, or the proxy stops. */
static void proxy_pair(struct proxy *proxy, int client) {
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons(proxy->target_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(upstream, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(upstream);
        close(client);
        return;
    }
    for (;;) {
        if (atomic_load(&proxy->reset_now)) {
            proxy_abort(client);
            proxy_abort(upstream);
            atomic_store(&proxy->swallow_acks, 0);
            atomic_store(&proxy->reset_now, 0);
            atomic_fetch_add(&proxy->resets, 1);
            return;
        }
        if (atomic_load(&proxy->stop)) break;
        struct pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
        if (poll(fds, 2, 5) <= 0) continue;
        if (fds[0].revents && !proxy_forward(client, upstream, false, proxy)) break;
        if (fds[1].revents &&
            !proxy_forward(upstream, client, atomic_load(&proxy->swallow_acks), proxy))
            break;
    }
    close(client);
    close(upstream);
}

static void *proxy_run(void *argument) {
    struct proxy *proxy = argument;
    while (!atomic_load(&proxy->stop)) {
        struct pollfd listen_poll = {proxy->listen_fd, POLLIN, 0};
        if (poll(&listen_poll, 1, 20) <= 0) continue;
        int client = accept(proxy->listen_fd, NULL, NULL);
        if (client >= 0) proxy_pair(proxy, client);
    }
    return NULL;
}

static void proxy_start(struct proxy *proxy, uint16_t target_port) {
    memset(proxy, 0, sizeof(*proxy));
    proxy->target_port = target_port;
    proxy->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(proxy->listen_fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(proxy->listen_fd, (struct sockaddr *)&address, sizeof(address)) == 0);
    REQUIRE(listen(proxy->listen_fd, 8) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(getsockname(proxy->listen_fd, (struct sockaddr *)&address, &length) == 0);
    proxy->port = ntohs(address.sin_port);
    REQUIRE(pthread_create(&proxy->thread, NULL, proxy_run, proxy) == 0);
}

static void proxy_stop(struct proxy *proxy) {
    atomic_store(&proxy->stop, 1);
    REQUIRE(pthread_join(proxy->thread, NULL) == 0);
    close(proxy->listen_fd);
}

/* Asks the proxy for a reset and waits (bounded) until it happened. */
static void proxy_reset(struct proxy *proxy) {
    int before = atomic_load(&proxy->resets);
    atomic_store(&proxy->reset_now, 1);
    for (int step = 0; step < 5000 && atomic_load(&proxy->resets) == before; step++) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    CHECK(atomic_load(&proxy->resets) == before + 1);
}

#define RESET_RECORDS 24000u

static void test_connection_reset(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-reset");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "8M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    static struct proxy proxy;
    proxy_start(&proxy, daemon.port);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%u", proxy.port);
    struct reports reports;
    memset(&reports, 0, sizeof(reports));
    struct intake_producer_config config = {
        .address = address,
        .producer_id = "reset-1",
        .producer_id_length = 7,
        .io_timeout_ms = 5000,
        .reconnect_backoff_min_ms = 10,
        .reconnect_backoff_max_ms = 100,
        .on_delivery = reports_collect,
        .delivery_context = &reports,
    };
    struct intake_producer *producer = NULL;
    REQUIRE(intake_producer_open(&config, &producer, NULL, 0) == 0);
    static uint64_t sequences[2][RESET_RECORDS];
    uint64_t counts[2] = {0, 0};
    static const char *const topics[2] = {"reset.a", "reset.b"};
    int result = 0;
    uint64_t hello_after_pause = 0;
    for (uint32_t index = 0; result == 0 && index < RESET_RECORDS; index++) {
        /* Twice: acks swallowed (committed, the producer does not know), then an RST. Once
         * after a pause (intake committed all of it), once at once (records in flight). */
        if (index == 3000 || index == 12000 || index == 20000) {
            /* Connected first: a swallowed Hello answer would only time the Hello out. */
            CHECK(intake_producer_wait_acks(producer, intake_producer_last_sequence(producer),
                                            10000) == 0);
            if (index == 12000) {
                struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
                intake_producer_stats(producer, &stats);
                hello_after_pause = stats.last_hello_sequence;
            }
            atomic_store(&proxy.swallow_acks, 1);
        }
        if (index == 7000 || index == 16000) {
            CHECK(intake_producer_flush(producer) == 0);
            if (index == 7000)
                /* intake commits all of it (the acks are swallowed), then the reset. */
                CHECK(producer_util_wait_logged(directory, topics, 2, counts[0] + counts[1],
                                                30000) == counts[0] + counts[1]);
            proxy_reset(&proxy);
        }
        if (index == 22000) {
            /* Acks swallowed, then intaked SIGKILLed: the new one answers the Hello with 0, the
             * producer resends the 2000 records it committed, and they are dropped. */
            CHECK(intake_producer_flush(producer) == 0);
            CHECK(producer_util_wait_logged(directory, topics, 2, counts[0] + counts[1], 30000) ==
                  counts[0] + counts[1]);
            kill(daemon.pid, SIGKILL);
            waitpid(daemon.pid, NULL, 0);
            atomic_store(&proxy.swallow_acks, 0);
            REQUIRE(daemon_start_port(&daemon, directory, flags, daemon.port));
        }
        uint64_t sequence = 0;
        result = producer_util_send(producer, topics[index % 2], &sequence);
        if (result == 0) sequences[index % 2][counts[index % 2]++] = sequence;
    }
    CHECK(result == 0);
    result = intake_producer_wait_acks(producer, intake_producer_last_sequence(producer), 30000);
    if (result != 0) fprintf(stderr, "wait_acks: %s\n", intake_producer_last_error(producer));
    CHECK(result == 0);
    struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
    intake_producer_stats(producer, &stats);
    intake_producer_close(producer);
    printf("connection_reset: connections=%" PRIu64 " resent=%" PRIu64 " last_hello=%" PRIu64
           " swallowed=%" PRIu64 " bytes\n",
           stats.connections, stats.resent, stats.last_hello_sequence,
           (uint64_t)atomic_load(&proxy.swallowed_bytes));
    CHECK(atomic_load(&proxy.swallowed_bytes) > 0);
    CHECK(stats.connections == 4);
    CHECK(stats.last_hello_sequence == 0);
    /* The Hello after the paused reset knew everything the first connection sent (1..7000)
     * was committed, though no ack for the last 4000 reached the producer. */
    printf("connection_reset: Hello after the pause answered %" PRIu64 "\n", hello_after_pause);
    CHECK(hello_after_pause == 7000);
    CHECK(reports.ok == RESET_RECORDS);
    CHECK(reports.order_errors == 0);
    for (int topic = 0; topic < 2; topic++)
        producer_util_check_log(directory, topics[topic], "reset-1", sequences[topic],
                                counts[topic]);
    proxy_stop(&proxy);
    CHECK(daemon_stop(&daemon) == 0);
    uint64_t duplicates = DAEMON_WORKER_COUNTER(&daemon, records_duplicate);
    printf("connection_reset: the restarted intaked dropped %" PRIu64 " duplicates\n", duplicates);
    CHECK(duplicates >= 2000);
    daemon_directory_remove(directory);
}

/* intake-produce --producer-id reading a live stream from stdin: intaked is SIGKILLed between
 * two lines and restarted; the tool reconnects by itself, and every line is in the log once. */
static void test_tool_live(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "producer-tool");
    const char *const flags[] = {"--backend", "pbuf", "--log-size", "4M", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    char command[1024];
    snprintf(command, sizeof(command),
             "(echo one; sleep 0.5; echo two; sleep 2; echo three) | "
             "%s --connect %s --topic live --producer-id tool-live 2>&1",
             test_program_path("intake-produce"), daemon.address);
    FILE *tool = popen(command, "r");
    REQUIRE(tool != NULL);
    struct timespec pause = {0, 900 * 1000 * 1000}; /* after "two" */
    nanosleep(&pause, NULL);
    kill(daemon.pid, SIGKILL);
    waitpid(daemon.pid, NULL, 0);
    REQUIRE(daemon_start_port(&daemon, directory, flags, daemon.port));
    char output[1024];
    size_t length = fread(output, 1, sizeof(output) - 1, tool);
    output[length] = '\0';
    int status = pclose(tool);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(output, "acked 3 records (last sequence 3) producer_id=tool-live") != NULL);
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(directory, "live", "check", &options, &consumer, why,
                                 sizeof(why)) == 0);
    static const char *const lines[] = {"one", "two", "three"};
    struct intake_consumer_record record;
    int count = 0;
    int wrong = 0;
    while (count < 4 && intake_consumer_poll(consumer, &record) == 1) {
        const uint8_t *value = NULL;
        const uint8_t *id = NULL;
        size_t value_length = 0;
        size_t id_length = 0;
        bool parsed = producer_util_fields(record.bytes, record.length, &value, &value_length, &id,
                                           &id_length);
        if (!parsed || count >= 3 || record.sequence != (uint64_t)count + 1 ||
            value_length != strlen(lines[count]) || memcmp(value, lines[count], value_length)) {
            /* Says what was found, so a failure in CI can be read. */
            printf("tool_live: entry %d: parsed %d sequence %" PRIu64 " value '%.*s' id '%.*s'\n",
                   count, parsed, record.sequence, parsed ? (int)value_length : 0,
                   parsed ? (const char *)value : "", parsed ? (int)id_length : 0,
                   parsed ? (const char *)id : "");
            wrong++;
        }
        count++;
    }
    intake_consumer_close(consumer);
    CHECK(count == 3);
    CHECK(wrong == 0);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

int main(void) {
    test_kill_restart();
    test_connection_reset();
    test_tool_live();
    return test_finish();
}
