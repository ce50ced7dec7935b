/*
 * sigbus.c: who handles SIGBUS on the client library's mappings (include/intake/consumer.h,
 * "Signals"): the library's handler (src/base/fault_guard.c) or the host's, which hands each
 * fault to intake_sigbus_handle. Any thread; intake_sigbus_handle runs in signal handlers.
 */
#include <errno.h>
#include <signal.h>

#include "fault_guard.h"
#include "intake/consumer.h"

int intake_sigbus_set_mode(enum intake_sigbus_mode mode) {
    if (mode != INTAKE_SIGBUS_LIBRARY && mode != INTAKE_SIGBUS_HOST) return -EINVAL;
    return fault_guard_set_host_mode(mode == INTAKE_SIGBUS_HOST);
}

int intake_sigbus_handle(int signal_number, void *info, void *context) {
    (void)context;
    return fault_guard_handle(signal_number, (const siginfo_t *)info) ? 1 : 0;
}
