/*
 * fault_guard.c: the SIGBUS recovery table and handler (see fault_guard.h).
 *
 * The table is a fixed array (no allocation in the handler, none after startup): a slot is in
 * use while its start is non-zero. Registration fills bytes, protection and flag, then
 * release-stores start; the handler acquire-loads start before reading the rest.
 */
#include "fault_guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

struct fault_range {
    _Atomic uintptr_t start; /* 0: free */
    size_t bytes;
    int protection;
    atomic_bool *broken;
};

static struct fault_range fault_ranges[FAULT_GUARD_RANGES_MAX];
/* One past the highest slot ever used: the handler scans no further. */
static _Atomic uint32_t fault_ranges_used;
static _Atomic uint64_t fault_recovered;
static struct sigaction fault_previous;
static pthread_once_t fault_install_once = PTHREAD_ONCE_INIT;
static int fault_install_result;
/* The host handles SIGBUS and hands faults to fault_guard_handle: install nothing. */
static atomic_bool fault_host_mode;
/* Our handler is installed (then the mode can no longer change). */
static atomic_bool fault_installed;

static void fault_previous_run(int signal_number, siginfo_t *info, void *context) {
    if ((fault_previous.sa_flags & SA_SIGINFO) && fault_previous.sa_sigaction != NULL) {
        fault_previous.sa_sigaction(signal_number, info, context);
        return;
    }
    if (fault_previous.sa_handler != SIG_DFL && fault_previous.sa_handler != SIG_IGN) {
        fault_previous.sa_handler(signal_number);
        return;
    }
    /* Default action: returning re-executes the access, which faults again and kills us. */
    signal(signal_number, SIG_DFL);
}

bool fault_guard_handle(int signal_number, const siginfo_t *info) {
    if (signal_number != SIGBUS || info == NULL) return false;
    uintptr_t address = (uintptr_t)info->si_addr;
    uint32_t used = atomic_load_explicit(&fault_ranges_used, memory_order_acquire);
    for (uint32_t index = 0; index < used; index++) {
        struct fault_range *range = &fault_ranges[index];
        /* Acquire: pairs with the release store in register; bytes/protection/broken are set. */
        uintptr_t start = atomic_load_explicit(&range->start, memory_order_acquire);
        if (start == 0 || address < start || address - start >= range->bytes) continue;
        void *replaced = mmap((void *)start, range->bytes, range->protection,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        if (replaced == MAP_FAILED) return false;
        atomic_store_explicit(range->broken, true, memory_order_release);
        atomic_fetch_add_explicit(&fault_recovered, 1, memory_order_relaxed);
        return true;
    }
    return false;
}

static void fault_handler(int signal_number, siginfo_t *info, void *context) {
    if (fault_guard_handle(signal_number, info)) return;
    fault_previous_run(signal_number, info, context);
}

static void fault_install(void) {
    /* The host owns SIGBUS (fault_guard_set_host_mode): it calls fault_guard_handle itself. */
    if (atomic_load_explicit(&fault_host_mode, memory_order_acquire)) return;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = fault_handler;
    /* SA_ONSTACK: run on the thread's alternate signal stack where it has one. The Go runtime
     * requires it of every handler in its process (its goroutines' stacks are small and it
     * gives each thread an alternate stack); elsewhere it changes nothing. */
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    fault_install_result = sigaction(SIGBUS, &action, &fault_previous) == 0 ? 0 : -errno;
    atomic_store_explicit(&fault_installed, fault_install_result == 0, memory_order_release);
}

int fault_guard_set_host_mode(bool host) {
    if (atomic_load_explicit(&fault_installed, memory_order_acquire)) return -EBUSY;
    atomic_store_explicit(&fault_host_mode, host, memory_order_release);
    return 0;
}

int fault_guard_register(void *start, size_t bytes, int protection, atomic_bool *broken) {
    INTAKE_ASSERT(start != NULL && bytes > 0);
    INTAKE_ASSERT(broken != NULL);
    pthread_once(&fault_install_once, fault_install);
    if (fault_install_result != 0) return fault_install_result;
    for (uint32_t index = 0; index < FAULT_GUARD_RANGES_MAX; index++) {
        struct fault_range *range = &fault_ranges[index];
        uintptr_t expected = 0;
        /* Claim the slot with a placeholder start that matches no address (1 is never mapped
         * with bytes covering a real fault: bytes is set to 0 until the real start lands). */
        if (atomic_load_explicit(&range->start, memory_order_relaxed) != 0) continue;
        if (!atomic_compare_exchange_strong_explicit(&range->start, &expected, (uintptr_t)1,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        range->bytes = 0;
        range->protection = protection;
        range->broken = broken;
        range->bytes = bytes;
        /* Release: the handler that acquire-loads this start sees bytes, protection, broken. */
        atomic_store_explicit(&range->start, (uintptr_t)start, memory_order_release);
        uint32_t used = atomic_load_explicit(&fault_ranges_used, memory_order_relaxed);
        while (used < index + 1 &&
               !atomic_compare_exchange_weak_explicit(&fault_ranges_used, &used, index + 1,
                                                      memory_order_release, memory_order_relaxed)) {
        }
        return (int)index;
    }
    return -ENOSPC;
}

void fault_guard_unregister(int handle) {
    if (handle < 0) return;
    INTAKE_ASSERT(handle < FAULT_GUARD_RANGES_MAX);
    atomic_store_explicit(&fault_ranges[handle].start, 0, memory_order_release);
}

uint64_t fault_guard_recovered_count(void) {
    return atomic_load_explicit(&fault_recovered, memory_order_relaxed);
}
