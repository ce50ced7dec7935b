package intake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a real intaked ($INTAKE_BIN_DIR/intaked, else on PATH) on a free loopback port.
type daemon struct {
	address, shmDir string
	command         *exec.Cmd
	log             *os.File
}

func startDaemon(t *testing.T, flags ...string) *daemon {
	t.Helper()
	program := filepath.Join(os.Getenv("INTAKE_BIN_DIR"), "intaked")
	if _, err := os.Stat(program); err != nil {
		program = "intaked"
	}
	d := &daemon{
		shmDir: fmt.Sprintf("/dev/shm/intake-gotest-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))}
	os.RemoveAll(d.shmDir)
	d.log, _ = os.Create(filepath.Join(t.TempDir(), "intaked.log"))
	arguments := append([]string{"--listen", "127.0.0.1:0", "--shm-dir", d.shmDir, "--log-size", "8M",
		"--max-frame", "64K", "--backend", "pbuf"}, flags...)
	d.command = exec.Command(program, arguments...)
	d.command.Stderr = d.log
	if err := d.command.Start(); err != nil {
		t.Fatal(err)
	}
	// Ready, and on which port the kernel picked, from its counters region (intake-stat beside
	// intaked, or on PATH like it).
	stat := filepath.Join(filepath.Dir(program), "intake-stat")
	if filepath.Dir(program) == "." {
		stat = "intake-stat"
	}
	ready, err := exec.Command(stat, "--shm-dir", d.shmDir, "--wait-ready=30", "--pid",
		fmt.Sprint(d.command.Process.Pid)).Output()
	for _, line := range strings.Fields(string(ready)) {
		if strings.HasPrefix(line, "listen=") {
			d.address = strings.TrimPrefix(line, "listen=")
		}
	}
	if err != nil || d.address == "" {
		text, _ := os.ReadFile(d.log.Name())
		t.Fatalf("intaked did not start (%v):\n%s", err, text)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	d.command.Process.Signal(syscall.SIGTERM)
	if err := d.command.Wait(); err != nil {
		t.Errorf("intaked: %v", err)
	}
	os.RemoveAll(d.shmDir)
}

func produce(t *testing.T, d *daemon, topic string, count int) {
	t.Helper()
	producer, err := NewProducer(d.address, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for number := 0; number < count; number++ {
		if _, err := producer.Send(topic, []byte(fmt.Sprint("key-", number)),
			[]byte(fmt.Sprint("value-", number))); err != nil {
			t.Fatal(err)
		}
	}
	if err := producer.Flush(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProduceAndConsume(t *testing.T) {
	d := startDaemon(t)
	producer, err := NewProducer(d.address, nil)
	if err != nil {
		t.Fatal(err)
	}
	for number := 0; number < 1000; number++ {
		sequence, err := producer.Send("orders", []byte(fmt.Sprint("key-", number)),
			[]byte(fmt.Sprint("value-", number)),
			Header{"n", []byte(fmt.Sprint(number))}, Header{"empty", nil})
		if err != nil || sequence != uint64(number+1) {
			t.Fatalf("send %d: sequence %d, %v", number, sequence, err)
		}
	}
	if err := producer.Flush(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	consumer, err := OpenConsumer(d.shmDir, "orders", ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := 0
	for seen < 1000 {
		records, err := consumer.Poll(300, 5*time.Second)
		if err != nil || len(records) == 0 {
			t.Fatalf("after %d records: %v", seen, err)
		}
		for _, record := range records {
			if record.Offset != uint64(seen) || record.Topic != "orders" ||
				string(record.Key) != fmt.Sprint("key-", seen) ||
				string(record.Value) != fmt.Sprint("value-", seen) ||
				record.Sequence != uint64(seen+1) || !record.Valid() ||
				record.Principal != 0xf33a49644e3a182f || // anonymous (the plaintext listener)
				len(record.Headers) != 2 || record.Headers[0].Key != "n" ||
				string(record.Headers[0].Value) != fmt.Sprint(seen) ||
				record.Headers[1].Key != "empty" || len(record.Headers[1].Value) != 0 {
				t.Fatalf("record %d: %+v", seen, record)
			}
			seen++
		}
	}
	if records, err := consumer.Poll(10, 0); len(records) != 0 || err != nil {
		t.Fatalf("more than sent: %d, %v", len(records), err)
	}
}

func TestConsumerSetAndCommit(t *testing.T) {
	d := startDaemon(t)
	produce(t, d, "a", 3)
	set, err := OpenConsumerSet(d.shmDir, nil, ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	produce(t, d, "b", 4) // created after the set opened
	got := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for got["a"]+got["b"] < 7 && time.Now().Before(deadline) {
		records, err := set.Poll(100, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, record := range records {
			got[record.Topic]++
		}
	}
	if got["a"] != 3 || got["b"] != 4 {
		t.Fatalf("got %v", got)
	}

	named := ConsumerOptions{Name: "go-resumer"}
	consumer, err := OpenConsumer(d.shmDir, "b", named)
	if err != nil {
		t.Fatal(err)
	}
	records, _ := consumer.Poll(2, time.Second)
	if len(records) != 2 || consumer.Commit() != nil {
		t.Fatal("poll and commit")
	}
	consumer.Close()
	consumer, err = OpenConsumer(d.shmDir, "b", named)
	if err != nil {
		t.Fatal(err)
	}
	records, _ = consumer.Poll(1, time.Second)
	if len(records) != 1 || records[0].Offset != 2 {
		t.Fatalf("resumed at %+v", records)
	}
	consumer.Close()
	if _, err := OpenConsumer(d.shmDir, "missing", ConsumerOptions{}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a missing topic: %v", err)
	}
}

func TestFlushNamesFailedRecords(t *testing.T) {
	d := startDaemon(t)
	big := bytes.Repeat([]byte("x"), 100*1024) // over --max-frame: REJECTED
	producer, err := NewProducer(d.address, &ProducerOptions{ProducerID: "go-idempotent-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for number := 1; number <= 10; number++ {
		value := []byte(fmt.Sprint("rec-", number))
		if number == 6 {
			value = big
		}
		if _, err := producer.Send("idem", nil, value); err != nil {
			t.Fatal(err)
		}
	}
	err = producer.Flush(10 * time.Second)
	var delivery *DeliveryError
	if !errors.As(err, &delivery) || len(delivery.Failures) != 1 ||
		delivery.Failures[0].Sequence != 6 || delivery.Failures[0].Topic != "idem" ||
		delivery.Failures[0].Status != "REJECTED" {
		t.Fatalf("flush: %v (%+v)", err, delivery)
	}
	consumer, err := OpenConsumer(d.shmDir, "idem", ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	records, _ := consumer.Poll(100, 5*time.Second)
	if len(records) != 9 || string(records[5].Value) != "rec-7" {
		t.Fatalf("logged %d records", len(records))
	}
}

// The TLS options reach libintake: certificates made now (scripts/tls-dev-certs), and the
// daemon's plaintext port refuses the handshake, so TLS was attempted, never plaintext.
func TestTLSOptionsReachLibintake(t *testing.T) {
	d := startDaemon(t)
	certs := t.TempDir()
	source := os.Getenv("INTAKE_SOURCE_DIR")
	if source == "" {
		source = "../.."
	}
	if output, err := exec.Command(source+"/scripts/tls-dev-certs", certs).CombinedOutput(); err != nil {
		t.Fatalf("tls-dev-certs: %v: %s", err, output)
	}
	_, err := NewProducer(d.address, &ProducerOptions{TLSCAFile: certs + "/ca.pem"})
	if !errors.Is(err, syscall.ECONNABORTED) || !strings.Contains(err.Error(), "plaintext listener") {
		t.Fatalf("TLS to a plaintext port: %v", err)
	}
	_, err = NewProducer(d.address, &ProducerOptions{TLSCAFile: certs + "/missing.pem"})
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "tls_ca_file") {
		t.Fatalf("a missing CA file: %v", err)
	}
}

var faultSink byte

// The Go runtime's signal handling stays intact with libintake's SIGBUS guard installed: its
// handler runs on the alternate stack, a fault outside its mappings reaches the Go runtime
// (a recoverable panic with SetPanicOnFault), os/signal still delivers, and a log truncated
// under a consumer is an error, not a crash.
func TestGoSignalHandlingIntact(t *testing.T) {
	d := startDaemon(t)
	produce(t, d, "signals", 5)
	consumer, err := OpenConsumer(d.shmDir, "signals", ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	if !sigbusOnStack() {
		t.Fatal("the SIGBUS handler in place lacks SA_ONSTACK")
	}

	// A fault in Go code, outside every intake mapping: the Go runtime must get it.
	file, _ := os.Create(filepath.Join(t.TempDir(), "page"))
	file.Truncate(4096)
	mapping, err := syscall.Mmap(int(file.Fd()), 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	file.Truncate(0)
	recovered := func() (panicked interface{}) {
		old := debug.SetPanicOnFault(true)
		defer debug.SetPanicOnFault(old)
		defer func() { panicked = recover() }()
		faultSink += mapping[0] // a real load: `_ = mapping[0]` may be compiled away
		return nil
	}()
	if recovered == nil {
		t.Fatal("no fault reached the Go runtime")
	}
	syscall.Munmap(mapping)

	received := make(chan os.Signal, 1)
	signal.Notify(received, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("os/signal did not deliver SIGUSR1")
	}
	signal.Stop(received)

	// A copy of the log, truncated under a consumer of it: an error from Poll.
	copyDir := t.TempDir()
	for _, suffix := range []string{".log", ".consumers"} {
		source, _ := os.Open(filepath.Join(d.shmDir, "signals"+suffix))
		target, _ := os.Create(filepath.Join(copyDir, "signals"+suffix))
		io.Copy(target, source)
		source.Close()
		target.Close()
	}
	copied, err := OpenConsumer(copyDir, "signals", ConsumerOptions{Start: StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	os.Truncate(filepath.Join(copyDir, "signals.log"), 0)
	records, err := copied.Poll(10, 0)
	if !errors.Is(err, syscall.EIO) || len(records) != 0 {
		t.Fatalf("poll of a truncated log: %d records, %v", len(records), err)
	}
}
