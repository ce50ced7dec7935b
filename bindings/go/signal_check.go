package intake

/*
#include <signal.h>
#include <string.h>

// The flags of the SIGBUS handler installed now (-1 when none is): for the tests, which check
// that libintake's handler runs on the alternate stack as Go requires.
static int go_sigbus_flags(void) {
    struct sigaction current;
    memset(&current, 0, sizeof(current));
    if (sigaction(SIGBUS, NULL, &current) != 0) return -1;
    return current.sa_flags;
}
*/
import "C"

// sigbusOnStack reports whether the SIGBUS handler in place has SA_ONSTACK.
func sigbusOnStack() bool {
	flags := C.go_sigbus_flags()
	return flags >= 0 && flags&C.SA_ONSTACK != 0
}
