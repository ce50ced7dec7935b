// Package intake is the Go binding of libintake (intake's producer and consumer library):
// send records to intaked over TCP, and read its shared-memory logs in place.
//
// It is cgo over the installed library (pkg-config intake; libintake.so.1), with no other
// module. Build with the library installed, or PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for one
// installed under a prefix (and its lib directory on the run path).
//
// Signals: libintake guards its shared mappings against SIGBUS (a log truncated under a
// consumer) with a handler installed with SA_ONSTACK, as the Go runtime requires of every
// handler in its process, that hands every fault outside its mappings to the handler it
// replaced: the Go runtime's. So a Go program keeps its own signal handling (os/signal, and
// runtime faults as panics with debug.SetPanicOnFault) while consuming.
//
// Zero copy: Record.Key, Value and header values are slices of the log's shared memory. In
// block retention (intaked's default) they hold the record's bytes until the consumer's next
// Poll or Close; after that, or at any time in overwrite retention, the writer may reuse them,
// and after Close the memory is unmapped: use them before polling again, or keep
// Record.Clone(). Record.Valid reports whether the bytes are still intact.
package intake

/*
#cgo pkg-config: intake
#include <intake/consumer.h>
#include <intake/producer.h>
*/
import "C"

import (
	"fmt"
	"syscall"
)

// Error is a libintake error: its errno and the library's one-line reason.
type Error struct {
	Errno  syscall.Errno
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Is lets errors.Is(err, syscall.ENOENT) (and the other errnos) match.
func (e *Error) Is(target error) bool {
	errno, ok := target.(syscall.Errno)
	return ok && errno == e.Errno
}

func newError(code C.int, reason string) error {
	errno := syscall.Errno(-code)
	if reason == "" {
		reason = errno.Error()
	}
	return &Error{Errno: errno, Reason: reason}
}

// Version is the version of the libintake loaded.
func Version() string { return C.GoString(C.intake_version()) }

func init() {
	if C.intake_version_number() < C.INTAKE_VERSION_NUMBER {
		panic(fmt.Sprintf("libintake %s is older than the one intake was built for (%s)",
			Version(), C.INTAKE_VERSION_STRING))
	}
}
