/*
 * tls-cost.c: what TLS costs intake's CPU, measured in one process (issue 17).
 *
 *   tls-cost [--records N] [--handshakes N]
 *
 * 1. The record layer per record (tls_record_open, the reactor's path after the handshake):
 *    records of 256 B and 16 KiB of content sealed by a client (tls_record_seal on a client
 *    session), opened in place by intake's session, for each suite; in one segment and in two
 *    (the split the reactor meets when a record straddles receive buffers). Next to it, the
 *    bare EVP AEAD over the same bytes (init with the nonce, the additional data, decrypt in
 *    place, check the tag): the layer's own share is the difference. And sealing an Ack-sized
 *    record (12 bytes), what every Ack costs on a TLS connection.
 * 2. One server handshake (handshake_run_job, the handshake thread's work: from the ClientHello
 *    to the session handed over), ECDSA P-256 and RSA-2048 credentials, with and without client
 *    certificates, against an OpenSSL client in memory. Only the server's CPU is counted.
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a shared machine's preemption is
 * not counted. Cycles are core cycles from perf_event_open when the machine exposes them; where
 * it does not (a VM without a PMU), they are the CPU time times the TSC's rate, measured at
 * start ("ref_cycles", labelled so: cycles at the nominal clock, not counted ones). The
 * credentials are made at run time in a fresh directory under /tmp, removed on exit.
 */
#include <errno.h>
#include <sys/stat.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "cli.h"
#include "tls_record.h"
#include "tls_test_util.h"

static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                     "TLS_CHACHA20_POLY1305_SHA256"};

/* ---------------------------------------------------------------- clocks --- */

struct clock_mark {
    uint64_t cpu_ns;
    uint64_t cycles;
};

static int cycles_fd = -1;
static double tsc_per_ns; /* the TSC's rate, for reference cycles */

static uint64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void tsc_calibrate(void) {
    uint64_t start_ns = monotonic_ns(), start_tsc = __rdtsc();
    struct timespec pause = {0, 200000000};
    nanosleep(&pause, NULL);
    tsc_per_ns = (double)(__rdtsc() - start_tsc) / (double)(monotonic_ns() - start_ns);
}

static void cycles_open(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_CPU_CYCLES;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    cycles_fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

static struct clock_mark clock_mark(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    struct clock_mark mark = {(uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec, 0};
    if (cycles_fd >= 0 && read(cycles_fd, &mark.cycles, sizeof(mark.cycles)) != sizeof(mark.cycles))
        mark.cycles = 0;
    return mark;
}

/* "ns_per_X=... cycles_per_X=..." for `count` operations between two marks. */
static void clock_print(const char *per, struct clock_mark start, struct clock_mark end,
                        uint64_t count, uint64_t bytes) {
    double ns = (double)(end.cpu_ns - start.cpu_ns) / (double)count;
    printf(" ns_per_%s=%.1f", per, ns);
    if (cycles_fd >= 0)
        printf(" cycles_per_%s=%.0f", per, (double)(end.cycles - start.cycles) / (double)count);
    else
        printf(" ref_cycles_per_%s=%.0f", per, ns * tsc_per_ns);
    if (bytes > 0) printf(" GB_per_s=%.2f", (double)bytes / (ns * (double)count));
    printf("\n");
}

/* ------------------------------------------------------------ record layer --- */

/* A session pair from the secrets of one real handshake: intake's (reads the client) and the
 * client's (seals what intake reads). */
static void sessions_for(struct tls_server *server, const char *suite, struct tls_session *intake,
                         struct tls_session *client) {
    static struct handshake_slot slot;
    SSL_free(tls_test_connect(server, suite, 0, &slot));
    *intake = slot.session;
    TLS_TEST_REQUIRE(tls_session_init(client, intake->cipher_suite, intake->write.secret,
                                      intake->read.secret, intake->secret_bytes, 0) == 0);
}

/* Opens `count` records of `content` bytes, each in `segments` pieces; prints the cost. */
static void measure_open(struct tls_server *server, const char *suite, uint32_t content,
                         uint32_t segments, uint32_t count) {
    struct tls_session intake, client;
    sessions_for(server, suite, &intake, &client);
    uint32_t record_bytes = content + TLS_RECORD_OVERHEAD_BYTES;
    uint8_t *records = malloc((size_t)count * record_bytes);
    uint8_t *plaintext = calloc(1, content);
    TLS_TEST_REQUIRE(records != NULL && plaintext != NULL);
    for (uint32_t index = 0; index < count; index++)
        TLS_TEST_REQUIRE(tls_record_seal(&client, TLS_CONTENT_APPLICATION_DATA, plaintext, content,
                                         records + (size_t)index * record_bytes,
                                         record_bytes) == record_bytes);
    struct clock_mark start = clock_mark();
    for (uint32_t index = 0; index < count; index++) {
        uint8_t *record = records + (size_t)index * record_bytes;
        /* Two segments: cut in the middle of the content, as a buffer boundary would. */
        struct tls_segment pieces[2] = {{record, record_bytes}, {NULL, 0}};
        if (segments == 2) {
            pieces[0].length = record_bytes / 2;
            pieces[1].bytes = record + record_bytes / 2;
            pieces[1].length = record_bytes - record_bytes / 2;
        }
        struct tls_opened opened;
        enum tls_open_result result = tls_record_open(&intake, pieces, segments, &opened);
        TLS_TEST_REQUIRE(result == TLS_OPEN_DATA && opened.plaintext_bytes == content);
    }
    struct clock_mark end = clock_mark();
    printf("tls_record_open suite=%s content_bytes=%u segments=%u records=%u", suite, content,
           segments, count);
    clock_print("record", start, end, count, (uint64_t)content * count);
    tls_session_destroy(&intake);
    tls_session_destroy(&client);
    free(records);
    free(plaintext);
}

/* The bare AEAD over the same work: what the record layer adds is the difference. */
static void measure_evp(const char *suite, uint32_t content, uint32_t count) {
    const EVP_CIPHER *cipher = strstr(suite, "CHACHA")    ? EVP_chacha20_poly1305()
                               : strstr(suite, "AES_256") ? EVP_aes_256_gcm()
                                                          : EVP_aes_128_gcm();
    uint8_t key[32] = {1}, nonce[TLS_IV_BYTES] = {2}, header[5] = {23, 3, 3, 0, 0}, tag[16];
    uint32_t inner = content + 1;
    uint8_t *buffer = calloc(1, inner);
    EVP_CIPHER_CTX *encrypt = EVP_CIPHER_CTX_new(), *decrypt = EVP_CIPHER_CTX_new();
    TLS_TEST_REQUIRE(buffer && encrypt && decrypt);
    TLS_TEST_REQUIRE(EVP_EncryptInit_ex(encrypt, cipher, NULL, key, NULL) == 1);
    TLS_TEST_REQUIRE(EVP_DecryptInit_ex(decrypt, cipher, NULL, key, NULL) == 1);
    int length = 0;
    /* One valid ciphertext and tag, decrypted again and again from a fresh copy. */
    uint8_t *sealed = malloc(inner);
    TLS_TEST_REQUIRE(sealed != NULL);
    EVP_EncryptInit_ex(encrypt, NULL, NULL, NULL, nonce);
    EVP_EncryptUpdate(encrypt, NULL, &length, header, 5);
    EVP_EncryptUpdate(encrypt, sealed, &length, buffer, (int)inner);
    EVP_EncryptFinal_ex(encrypt, sealed + inner, &length);
    EVP_CIPHER_CTX_ctrl(encrypt, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    /* Every round decrypts its own copy, in place, as the record layer does. */
    uint8_t *copies = malloc((size_t)count * inner);
    TLS_TEST_REQUIRE(copies != NULL);
    for (uint32_t index = 0; index < count; index++)
        memcpy(copies + (size_t)index * inner, sealed, inner);
    struct clock_mark start = clock_mark();
    for (uint32_t index = 0; index < count; index++) {
        uint8_t *bytes = copies + (size_t)index * inner;
        TLS_TEST_REQUIRE(EVP_DecryptInit_ex(decrypt, NULL, NULL, NULL, nonce) == 1);
        EVP_DecryptUpdate(decrypt, NULL, &length, header, 5);
        EVP_DecryptUpdate(decrypt, bytes, &length, bytes, (int)inner);
        EVP_CIPHER_CTX_ctrl(decrypt, EVP_CTRL_AEAD_SET_TAG, 16, tag);
        TLS_TEST_REQUIRE(EVP_DecryptFinal_ex(decrypt, tag, &length) == 1);
    }
    struct clock_mark end = clock_mark();
    free(copies);
    printf("evp_aead_decrypt suite=%s content_bytes=%u records=%u", suite, content, count);
    clock_print("record", start, end, count, (uint64_t)content * count);
    EVP_CIPHER_CTX_free(encrypt);
    EVP_CIPHER_CTX_free(decrypt);
    free(buffer);
    free(sealed);
}

static void measure_seal_ack(struct tls_server *server, const char *suite, uint32_t count) {
    struct tls_session intake, client;
    sessions_for(server, suite, &intake, &client);
    uint8_t ack[12] = {11, 8, 0xe8, 7}, out[128];
    struct clock_mark start = clock_mark();
    for (uint32_t index = 0; index < count; index++)
        TLS_TEST_REQUIRE(tls_record_seal(&intake, TLS_CONTENT_APPLICATION_DATA, ack, sizeof(ack),
                                         out, sizeof(out)) > 0);
    struct clock_mark end = clock_mark();
    printf("tls_record_seal suite=%s content_bytes=%zu (an Ack) records=%u", suite, sizeof(ack),
           count);
    clock_print("record", start, end, count, 0);
    tls_session_destroy(&intake);
    tls_session_destroy(&client);
}

/* ------------------------------------------------------------- handshakes --- */

static void measure_handshakes(const struct tls_test_credentials *credentials, const char *key_name,
                               bool mutual, uint32_t count) {
    struct tls_server server;
    tls_test_server(&server, credentials, mutual);
    static struct handshake_slot slot;
    uint64_t server_ns = 0;
    for (uint32_t round = 0; round < count; round++) {
        SSL *client = tls_test_client("TLS_AES_128_GCM_SHA256", credentials->ca,
                                      mutual ? credentials->client_uri_certificate : NULL,
                                      mutual ? credentials->client_uri_key : NULL);
        memset(&slot, 0, sizeof(slot));
        /* The server's jobs only: the client runs on the same thread between them. */
        uint8_t *pending = NULL;
        size_t pending_bytes = 0, capacity = 0;
        enum handshake_result result = HANDSHAKE_CONTINUE;
        while (result == HANDSHAKE_CONTINUE) {
            SSL_do_handshake(client);
            tls_test_take_client_output(client, &pending, &pending_bytes, &capacity);
            while (result == HANDSHAKE_CONTINUE && pending_bytes >= 5) {
                size_t record = 5 + ((size_t)pending[3] << 8) + pending[4];
                if (record > pending_bytes) break;
                memcpy(slot.input, pending, record);
                slot.input_bytes = (uint32_t)record;
                slot.job = HANDSHAKE_JOB_STEP;
                struct clock_mark before = clock_mark();
                handshake_run_job(&server, 0, &slot);
                server_ns += clock_mark().cpu_ns - before.cpu_ns;
                result = (enum handshake_result)slot.result;
                memmove(pending, pending + record, pending_bytes - record);
                pending_bytes -= record;
                if (slot.output_bytes > 0)
                    BIO_write(SSL_get_rbio(client), slot.output, (int)slot.output_bytes);
            }
        }
        TLS_TEST_REQUIRE(result == HANDSHAKE_DONE);
        tls_session_destroy(&slot.session);
        free(pending);
        SSL_free(client);
    }
    printf("tls_handshake key=%s client_certificates=%s handshakes=%u server_cpu_us_per_handshake="
           "%.1f handshakes_per_core_second=%.0f\n",
           key_name, mutual ? "required" : "no", count, (double)server_ns / count / 1000.0,
           1e9 * count / (double)server_ns);
    tls_server_destroy(&server);
}

static void usage(FILE *out) {
    fputs("usage: tls-cost [--records N] [--handshakes N]\n"
          "  the TLS record layer's cost per record and a server handshake's CPU; --help,\n"
          "  --version\n",
          out);
}

int main(int argc, char **argv) {
    uint32_t records = 20000, handshakes = 200;
    /* At least 8: the 16 KiB cells measure records / 8. */
    const struct cli_number_flag flags[] = {
        {"records", NUMBER_COUNT_SPEC(8, 100000000), &records, NULL},
        {"handshakes", NUMBER_COUNT_SPEC(1, 1000000), &handshakes, NULL},
    };
    int exit_now =
        cli_parse_numbers("tls-cost", argc, argv, flags, INTAKE_ARRAY_LENGTH(flags), usage);
    if (exit_now >= 0) return exit_now;
    cycles_open();
    tsc_calibrate();
    if (cycles_fd >= 0)
        printf("tls-cost: cycles counted by perf_event_open (core cycles)\n");
    else
        printf("tls-cost: no cycle counter on this machine: ref_cycles = CPU time x the TSC's "
               "%.3f GHz\n",
               tsc_per_ns);
    char directory[] = "/tmp/intake-tls-cost-XXXXXX";
    TLS_TEST_REQUIRE(mkdtemp(directory) != NULL);
    char ecdsa_directory[300], rsa_directory[300];
    snprintf(ecdsa_directory, sizeof(ecdsa_directory), "%s/ecdsa", directory);
    snprintf(rsa_directory, sizeof(rsa_directory), "%s/rsa", directory);
    TLS_TEST_REQUIRE(mkdir(ecdsa_directory, 0700) == 0 && mkdir(rsa_directory, 0700) == 0);
    struct tls_test_credentials ecdsa, rsa;
    tls_test_credentials_write(&ecdsa, ecdsa_directory, TLS_TEST_KEY_ECDSA_P256);
    tls_test_credentials_write(&rsa, rsa_directory, TLS_TEST_KEY_RSA_2048);
    struct tls_server server;
    tls_test_server(&server, &ecdsa, false);
    for (size_t suite = 0; suite < INTAKE_ARRAY_LENGTH(suites); suite++) {
        uint32_t sizes[2] = {256, TLS_PLAINTEXT_BYTES_MAX};
        for (int size = 0; size < 2; size++) {
            uint32_t count = sizes[size] > 4096 ? records / 8 : records;
            measure_open(&server, suites[suite], sizes[size], 1, count);
            measure_open(&server, suites[suite], sizes[size], 2, count);
            measure_evp(suites[suite], sizes[size], count);
        }
        measure_seal_ack(&server, suites[suite], records);
    }
    tls_server_destroy(&server);
    measure_handshakes(&ecdsa, "ecdsa-p256", false, handshakes);
    measure_handshakes(&ecdsa, "ecdsa-p256", true, handshakes);
    measure_handshakes(&rsa, "rsa-2048", false, handshakes);
    measure_handshakes(&rsa, "rsa-2048", true, handshakes);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    return system(command) == 0 ? 0 : 1;
}
