/*
 * doorbell.c: the wake-up handshake (see doorbell.h). Any thread; the owner-only calls say so.
 */
#include "doorbell.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long doorbell_futex(_Atomic uint32_t *word, int operation, uint32_t value,
                           const struct timespec *timeout) {
    return syscall(SYS_futex, (uint32_t *)word, operation, value, timeout, NULL, 0);
}

int doorbell_init(struct doorbell *doorbell, enum doorbell_kind kind) {
    INTAKE_ASSERT(doorbell != NULL);
    INTAKE_ASSERT(kind == DOORBELL_FUTEX || kind == DOORBELL_EVENTFD);
    atomic_init(&doorbell->armed, 0);
    atomic_init(&doorbell->sequence, 0);
    doorbell->kind = kind;
    doorbell->event_fd = -1;
    if (kind == DOORBELL_EVENTFD) {
        doorbell->event_fd = eventfd(0, EFD_CLOEXEC);
        if (doorbell->event_fd < 0) return -errno;
    }
    return 0;
}

void doorbell_destroy(struct doorbell *doorbell) {
    if (doorbell == NULL) return;
    if (doorbell->event_fd >= 0) close(doorbell->event_fd);
    doorbell->event_fd = -1;
}

uint32_t doorbell_arm(struct doorbell *doorbell) {
    /* seq_cst: ordered before the owner's re-check of its inputs (see doorbell.h). */
    atomic_store(&doorbell->armed, 1);
    return atomic_load(&doorbell->sequence);
}

void doorbell_disarm(struct doorbell *doorbell) {
    atomic_store(&doorbell->armed, 0);
}

uint32_t doorbell_token(const struct doorbell *doorbell) {
    INTAKE_ASSERT(doorbell->kind == DOORBELL_FUTEX);
    return atomic_load((_Atomic uint32_t *)&doorbell->sequence);
}

void doorbell_sleep(struct doorbell *doorbell, uint32_t token, uint64_t timeout_ns) {
    INTAKE_ASSERT(doorbell->kind == DOORBELL_FUTEX);
    struct timespec timeout = {(time_t)(timeout_ns / 1000000000u),
                               (long)(timeout_ns % 1000000000u)};
    /* Returns at once (EAGAIN) when a ring bumped the sequence after `token` was read. */
    long result = doorbell_futex(&doorbell->sequence, FUTEX_WAIT_PRIVATE, token,
                                 timeout_ns ? &timeout : NULL);
    INTAKE_ASSERT(result == 0 || errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT);
}

int doorbell_fd(const struct doorbell *doorbell) {
    INTAKE_ASSERT(doorbell->kind == DOORBELL_EVENTFD);
    INTAKE_ASSERT(doorbell->event_fd >= 0);
    return doorbell->event_fd;
}

void doorbell_ring_always(struct doorbell *doorbell) {
    if (doorbell->kind == DOORBELL_FUTEX) {
        atomic_fetch_add(&doorbell->sequence, 1);
        long woken = doorbell_futex(&doorbell->sequence, FUTEX_WAKE_PRIVATE, 1, NULL);
        INTAKE_ASSERT(woken >= 0);
        return;
    }
    INTAKE_ASSERT(doorbell->kind == DOORBELL_EVENTFD);
    uint64_t one = 1;
    /* An eventfd counter only overflows after 2^64-2 unread rings: the write cannot block. */
    ssize_t written = write(doorbell->event_fd, &one, sizeof(one));
    INTAKE_ASSERT(written == (ssize_t)sizeof(one));
}

void doorbell_ring(struct doorbell *doorbell) {
    /* The caller's publication (a release store) must be ordered before reading `armed`; the
     * owner stores `armed` before re-reading its inputs. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&doorbell->armed, memory_order_relaxed) == 0) return;
    if (atomic_exchange(&doorbell->armed, 0) == 0) return;
    doorbell_ring_always(doorbell);
}
