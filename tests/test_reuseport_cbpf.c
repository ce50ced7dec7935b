/*
 * test_reuseport_cbpf: the queue -> reactor program for SO_ATTACH_REUSEPORT_CBPF.
 *   1. the queue list parser accepts "4,5,6,7" and refuses malformed lists;
 *   2. for many lists (fixed and random, 1..64 reactors), the emitted program, run by the
 *      interpreter, maps every queue 0..1023 exactly as reuseport_queue_to_reactor does;
 *   3. on the real kernel: the program attaches to a SO_REUSEPORT group of listeners on
 *      127.0.0.1, and since loopback traffic is all receive queue 0, every connection lands on
 *      the listener the mapping names for queue 0 (checked for two lists naming different ones).
 *
 * intake-test: no-tsan (single-threaded: a BPF program and one reuseport group)
 */
#include "harness.h"

#include "reuseport_cbpf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TEST_LISTENERS   4
#define TEST_CONNECTIONS 32

static void test_parse(void) {
    uint32_t list[REUSEPORT_REACTORS_MAX];
    CHECK(reuseport_parse_queue_list("4,5,6,7", list, 64) == 4);
    CHECK(list[0] == 4 && list[1] == 5 && list[2] == 6 && list[3] == 7);
    CHECK(reuseport_parse_queue_list("0", list, 64) == 1 && list[0] == 0);
    const char *bad[] = {"", ",", "4,", ",4", "4,,5", "4,4", "a", "4;5", "-1", "70000", " 4"};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(bad); index++) {
        int result = reuseport_parse_queue_list(bad[index], list, 64);
        if (result != -EINVAL) fprintf(stderr, "accepted bad list \"%s\"\n", bad[index]);
        CHECK(result == -EINVAL);
    }
    CHECK(reuseport_parse_queue_list("1,2,3", list, 2) == -EINVAL);
}

/* Program and pure function agree for every queue; returns the number of disagreements. */
static uint32_t compare_all_queues(const uint32_t *list, uint32_t count) {
    struct sock_filter program[REUSEPORT_CBPF_INSTRUCTIONS_MAX];
    uint32_t length = reuseport_cbpf_build(list, count, program);
    uint32_t disagreements = 0;
    for (uint32_t queue = 0; queue < 1024; queue++) {
        int64_t chosen = reuseport_cbpf_run(program, length, queue);
        uint32_t expected = reuseport_queue_to_reactor(queue, list, count);
        if (chosen != (int64_t)expected || expected >= count) disagreements++;
    }
    return disagreements;
}

static void test_program_matches_function(void) {
    const uint32_t four[] = {4, 5, 6, 7};
    const uint32_t shuffled[] = {3, 0, 5, 6};
    const uint32_t one[] = {9};
    CHECK(compare_all_queues(four, 4) == 0);
    CHECK(compare_all_queues(shuffled, 4) == 0);
    CHECK(compare_all_queues(one, 1) == 0);
    CHECK(reuseport_queue_to_reactor(6, four, 4) == 2);
    CHECK(reuseport_queue_to_reactor(9, four, 4) == 1); /* fallback: 9 % 4 */
    CHECK(reuseport_queue_to_reactor(0, shuffled, 4) == 1);
    uint32_t widest[REUSEPORT_REACTORS_MAX];
    for (uint32_t index = 0; index < REUSEPORT_REACTORS_MAX; index++) widest[index] = 255 - index;
    CHECK(compare_all_queues(widest, REUSEPORT_REACTORS_MAX) == 0);
    uint64_t seed = 0x5eed;
    uint32_t failures = 0;
    for (int round = 0; round < 500; round++) {
        uint32_t count = 1 + (uint32_t)(test_random_next(&seed) % REUSEPORT_REACTORS_MAX);
        uint32_t list[REUSEPORT_REACTORS_MAX];
        for (uint32_t index = 0; index < count; index++)
            list[index] = (uint32_t)(test_random_next(&seed) % 300);
        failures += compare_all_queues(list, count) != 0;
    }
    CHECK(failures == 0);
    /* An instruction outside the subset is refused, not guessed at. */
    struct sock_filter foreign[] = {{BPF_LD | BPF_W | BPF_ABS, 0, 0, 12},
                                    {BPF_RET | BPF_A, 0, 0, 0}};
    CHECK(reuseport_cbpf_run(foreign, 2, 0) == -1);
}

static int listener_on(uint16_t port, uint16_t *bound_port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int on = 1;
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof(address);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *bound_port = ntohs(address.sin_port);
    return fd;
}

/* Connects TEST_CONNECTIONS clients and counts, per listener, the connections it accepted. */
static void connect_and_count(const int *listeners, uint16_t port, uint32_t *accepted) {
    int clients[TEST_CONNECTIONS];
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int index = 0; index < TEST_CONNECTIONS; index++) {
        clients[index] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(connect(clients[index], (struct sockaddr *)&address, sizeof(address)) == 0);
    }
    memset(accepted, 0, TEST_LISTENERS * sizeof(uint32_t));
    for (int index = 0; index < TEST_LISTENERS; index++)
        for (int fd; (fd = accept(listeners[index], NULL, NULL)) >= 0;) {
            accepted[index]++;
            close(fd);
        }
    for (int index = 0; index < TEST_CONNECTIONS; index++) close(clients[index]);
}

static void test_real_group(void) {
    int listeners[TEST_LISTENERS];
    uint16_t port = 0;
    listeners[0] = listener_on(0, &port);
    REQUIRE(listeners[0] >= 0);
    for (int index = 1; index < TEST_LISTENERS; index++) {
        uint16_t same = 0;
        listeners[index] = listener_on(port, &same);
        REQUIRE(listeners[index] >= 0);
    }
    const uint32_t lists[2][TEST_LISTENERS] = {{3, 0, 5, 6}, {4, 5, 6, 7}};
    for (int round = 0; round < 2; round++) {
        uint32_t expected = reuseport_queue_to_reactor(0, lists[round], TEST_LISTENERS);
        int attached = reuseport_cbpf_attach(listeners[round], lists[round], TEST_LISTENERS);
        CHECK(attached == 0);
        if (attached != 0) fprintf(stderr, "attach: %s\n", strerror(-attached));
        uint32_t accepted[TEST_LISTENERS];
        connect_and_count(listeners, port, accepted);
        printf("queue list %u,%u,%u,%u: expected listener %u; accepted", lists[round][0],
               lists[round][1], lists[round][2], lists[round][3], expected);
        for (int index = 0; index < TEST_LISTENERS; index++) printf(" %u", accepted[index]);
        printf("\n");
        for (uint32_t index = 0; index < TEST_LISTENERS; index++)
            CHECK(accepted[index] == (index == expected ? TEST_CONNECTIONS : 0u));
    }
    for (int index = 0; index < TEST_LISTENERS; index++) close(listeners[index]);
}

int main(void) {
    test_parse();
    test_program_matches_function();
    test_real_group();
    return test_finish();
}
