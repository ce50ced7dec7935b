/*
 * id-flood.c: a flood of producer ids that collide under the hashes intake used before issue 17
 * (FNV-1a 64 in the producer table, CRC32C in the deduplication index), against a running
 * intaked, to measure what the flood costs the daemon (issue 17, item e).
 *
 * Each id is sent as one record (sequence 1) on its own connection, as a made-up-id flood
 * would; MAX_OPEN connections are open at a time. Modes:
 *   random     ids with nothing in common (the baseline)
 *   producers  ids whose old producer-table bucket is the same: FNV-1a 64 of the id, masked
 *              by --buckets - 1 (65536 for the default --producers-max)
 *   dedupe     ids whose old deduplication index slot is the same: CRC32C of the id masked by
 *              --slots - 1 (2 x --dedupe-producers rounded up to a power of two; 131072 for
 *              --dedupe-producers 65536)
 * Prints the daemon's CPU time over the flood (utime + stime of --pid from /proc) and the wall
 * time. A keyed hash makes the three modes cost the same; an unkeyed one makes the colliding
 * modes grow with the square of --count. A figure, never an assertion (bench/id-flood-run).
 *
 * Usage: id-flood --connect HOST:PORT --pid PID --mode random|producers|dedupe --count N
 *        [--topic T] [--buckets N] [--slots N] [--tag TEXT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "cli.h"
#include "crc32c.h"
#include "topic_hash.h"
#include "varint.h"

#define MAX_OPEN  64
#define ID_BYTES  24 /* "flood-" + 10 digits + padding, then 4 free bytes */
#define TOPIC_MAX 64

struct options {
    const char *address;
    struct sockaddr_storage target; /* --connect, parsed */
    socklen_t target_length;
    const char *topic;
    const char *mode;
    const char *tag;
    uint64_t pid;
    uint32_t count;
    uint32_t buckets;
    uint32_t slots;
};

/* ------------------------------------------------------------- ids --- */

/* An id: a readable prefix with its number, then 4 bytes a mode may choose. */
static void id_base(uint32_t number, uint8_t *id) {
    memset(id, '.', ID_BYTES);
    char text[32];
    int length = snprintf(text, sizeof(text), "flood-%010u", number);
    memcpy(id, text, (size_t)length);
}

/* CRC32C over the last 4 bytes is a linear bijection (for a fixed prefix length): solve for the
 * 4 bytes that give the wanted CRC. col[i] is the CRC change of flipping bit i of them. */
static uint32_t columns[32];

static void crc_columns_make(void) {
    uint8_t zero[ID_BYTES] = {0}, flipped[ID_BYTES];
    uint32_t base = intake_crc32c(0, zero, ID_BYTES);
    for (int bit = 0; bit < 32; bit++) {
        memcpy(flipped, zero, ID_BYTES);
        flipped[ID_BYTES - 4 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        columns[bit] = intake_crc32c(0, flipped, ID_BYTES) ^ base;
    }
}

/* The 32 bits x with XOR of columns[i] for set bits == want: reduce the columns to the
 * identity (Gauss-Jordan over GF(2)), tracking which bits of x make each row. */
static uint32_t crc_solve(uint32_t want) {
    uint32_t rows[32], picks[32];
    int pivots[32];
    for (int bit = 0; bit < 32; bit++) rows[bit] = columns[bit], picks[bit] = 1u << bit;
    int rank = 0;
    for (int pivot = 0; pivot < 32; pivot++) {
        int found = -1;
        for (int row = rank; row < 32 && found < 0; row++)
            if (rows[row] >> pivot & 1u) found = row;
        if (found < 0) continue;
        uint32_t swap = rows[found];
        rows[found] = rows[rank], rows[rank] = swap;
        swap = picks[found], picks[found] = picks[rank], picks[rank] = swap;
        for (int row = 0; row < 32; row++)
            if (row != rank && (rows[row] >> pivot & 1u)) {
                rows[row] ^= rows[rank];
                picks[row] ^= picks[rank];
            }
        pivots[rank++] = pivot;
    }
    uint32_t solution = 0;
    for (int row = 0; row < rank; row++)
        if (want >> pivots[row] & 1u) solution ^= picks[row];
    return solution;
}

static void id_make(const struct options *options, uint32_t number, uint8_t *id) {
    id_base(number, id);
    if (strcmp(options->mode, "random") == 0) {
        uint32_t noise = number * 2654435761u ^ 0x5bd1e995u;
        memcpy(id + ID_BYTES - 4, &noise, 4);
        return;
    }
    if (strcmp(options->mode, "dedupe") == 0) {
        /* Force CRC32C(id) to a value whose low bits are 0x1234, distinct per id. */
        memset(id + ID_BYTES - 4, 0, 4);
        uint32_t now = intake_crc32c(0, id, ID_BYTES);
        uint32_t want = (number << 17) | (0x1234u & (options->slots - 1));
        uint32_t x = crc_solve(now ^ want);
        memcpy(id + ID_BYTES - 4, &x, 4);
        return;
    }
    /* producers: search the last two bytes for an FNV-1a 64 bucket of 0x1234 (the state over
     * the rest is computed once; a third byte moves when two are not enough). */
    const uint64_t prime = 0x100000001b3ull;
    for (uint32_t third = 0;; third++) {
        id[ID_BYTES - 3] = (uint8_t)('A' + third % 26);
        uint64_t state = topic_hash_feed(TOPIC_HASH_INITIAL, id, ID_BYTES - 2);
        for (uint32_t tail = 0; tail < 65536; tail++) {
            uint64_t hash = ((state ^ (tail >> 8)) * prime ^ (tail & 0xffu)) * prime;
            if ((hash & (options->buckets - 1)) != (0x1234u & (options->buckets - 1))) continue;
            id[ID_BYTES - 2] = (uint8_t)(tail >> 8);
            id[ID_BYTES - 1] = (uint8_t)tail;
            return;
        }
    }
}

/* --------------------------------------------------------- the wire --- */

/* A delimited Record: topic (1), sequence (5) = 1, producer_id (7). */
static size_t frame_make(const char *topic, const uint8_t *id, uint8_t *out) {
    uint8_t body[TOPIC_MAX + ID_BYTES + 16];
    size_t length = 0, topic_length = strlen(topic);
    body[length++] = 0x0a;
    body[length++] = (uint8_t)topic_length;
    memcpy(body + length, topic, topic_length);
    length += topic_length;
    body[length++] = 0x28;
    body[length++] = 1;
    body[length++] = 0x3a;
    body[length++] = ID_BYTES;
    memcpy(body + length, id, ID_BYTES);
    length += ID_BYTES;
    size_t prefix = varint_encode(length, out);
    memcpy(out + prefix, body, length);
    return prefix + length;
}

static int connect_to(const struct options *options) {
    int fd = socket(options->target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&options->target, options->target_length) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

/* Reads until the daemon closes (its Ack, then EOF after our half-close). */
static bool drain(int fd) {
    uint8_t buffer[512];
    bool got = false;
    for (;;) {
        ssize_t read_bytes = recv(fd, buffer, sizeof(buffer), 0);
        if (read_bytes < 0 && errno == EINTR) continue;
        if (read_bytes <= 0) return got;
        got = true;
    }
}

static double cpu_seconds(uint64_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%" PRIu64 "/stat", pid);
    FILE *file = fopen(path, "r");
    if (file == NULL) return -1;
    char line[2048];
    double seconds = -1;
    if (fgets(line, sizeof(line), file) != NULL) {
        const char *after = strrchr(line, ')');
        unsigned long utime = 0, stime = 0;
        /* Fields 14 and 15 (utime, stime) count from after the command's ')'. */
        if (after != NULL &&
            sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                   &stime) == 2)
            seconds = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    }
    fclose(file);
    return seconds;
}

static double wall_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void usage(FILE *out) {
    fprintf(out, "usage: id-flood --connect HOST:PORT --pid PID --mode random|producers|dedupe "
                 "--count N\n                [--topic T] [--buckets N] [--slots N] [--tag TEXT]\n"
                 "  --buckets and --slots are powers of two; --help, --version\n");
}

static const struct cli_word flood_modes[] = {{"random", 0}, {"producers", 1}, {"dedupe", 2}};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int apply_option(struct cli *cli, int option, void *context) {
    struct options *options = context;
    int mode = 0;
    const struct number_spec power_of_two = NUMBER_COUNT_SPEC(1, 1u << 31);
    switch (option) {
    case 'c': {
        char why[CLI_WHY_BYTES];
        options->address = optarg;
        if (intake_address_parse("--connect", optarg, &options->target, &options->target_length,
                                 why, sizeof(why)) == 0)
            return 0;
        return cli_refuse(cli, "%s", why);
    }
    case 'p': return cli_number(cli, &NUMBER_COUNT_SPEC(1, INT32_MAX), &options->pid);
    case 'm': options->mode = optarg; return cli_choose(cli, flood_modes, 3, &mode);
    case 'n': return cli_number_u32(cli, &NUMBER_COUNT_SPEC(1, 10000000), &options->count);
    case 't':
        options->topic = optarg;
        return strlen(optarg) <= TOPIC_MAX ? 0 : cli_bad_value(cli, "a topic of at most 64 bytes");
    case 'b':
    case 's': {
        uint32_t *target = option == 'b' ? &options->buckets : &options->slots;
        if (cli_number_u32(cli, &power_of_two, target) < 0) return -1;
        return intake_is_power_of_two(*target) ? 0 : cli_bad_value(cli, "a power of two");
    }
    case 'g': options->tag = optarg; return 0;
    default: INTAKE_ASSERT(!"an option without a case"); return -1;
    }
}

int main(int argc, char **argv) {
    struct options options = {.topic = "flood", .tag = "", .buckets = 65536, .slots = 131072};
    static const struct option long_options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"pid", required_argument, NULL, 'p'},
        {"mode", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'n'},
        {"topic", required_argument, NULL, 't'},
        {"buckets", required_argument, NULL, 'b'},
        {"slots", required_argument, NULL, 's'},
        {"tag", required_argument, NULL, 'g'},
        CLI_STANDARD_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct cli cli;
    cli_start(&cli, "id-flood", long_options, usage);
    int exit_now = cli_parse(&cli, argc, argv, apply_option, &options);
    if (exit_now >= 0) return exit_now;
    if (options.address == NULL || options.mode == NULL || options.count == 0 || options.pid == 0) {
        cli_refuse(&cli, "--connect, --pid, --mode and --count are required (see --help)");
        return cli_finish(&cli);
    }
    crc_columns_make();
    /* Every frame made before the clock starts. */
    uint8_t(*frames)[TOPIC_MAX + ID_BYTES + 24] = calloc(options.count, sizeof(*frames));
    size_t *lengths = calloc(options.count, sizeof(size_t));
    if (frames == NULL || lengths == NULL) return 1;
    for (uint32_t number = 0; number < options.count; number++) {
        uint8_t id[ID_BYTES];
        id_make(&options, number, id);
        lengths[number] = frame_make(options.topic, id, frames[number]);
    }
    double cpu_before = cpu_seconds(options.pid), wall_before = wall_seconds();
    uint32_t acked = 0;
    for (uint32_t start = 0; start < options.count; start += MAX_OPEN) {
        int fds[MAX_OPEN];
        uint32_t open_count = 0;
        for (uint32_t number = start; number < options.count && open_count < MAX_OPEN; number++) {
            int fd = connect_to(&options);
            if (fd < 0) {
                fprintf(stderr, "id-flood: connect %s: %s\n", options.address, strerror(-fd));
                return 1;
            }
            if (send(fd, frames[number], lengths[number], MSG_NOSIGNAL) !=
                    (ssize_t)lengths[number] ||
                shutdown(fd, SHUT_WR) != 0) {
                perror("id-flood: send");
                return 1;
            }
            fds[open_count++] = fd;
        }
        for (uint32_t index = 0; index < open_count; index++) {
            acked += drain(fds[index]);
            close(fds[index]);
        }
    }
    double cpu = cpu_seconds(options.pid) - cpu_before, wall = wall_seconds() - wall_before;
    printf("id-flood %s mode=%s count=%u acked=%u daemon_cpu_s=%.3f wall_s=%.3f "
           "daemon_cpu_us_per_id=%.2f\n",
           options.tag, options.mode, options.count, acked, cpu, wall, cpu * 1e6 / options.count);
    return acked == options.count ? 0 : 1;
}
