package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/workload"
)

// envRunMain makes the test binary run farmem's main, so that the tests see
// exactly what a user sees: the exit status and stderr of the real binary.
const envRunMain = "FARMEM_CLI_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) != "" {
		main()
		os.Exit(0)
	}
	nodeproc.MaybeRun()
	os.Exit(m.Run())
}

// runFarmem runs the binary with args and returns its exit status, stdout and
// stderr.
func runFarmem(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("farmem %v hung; stderr:\n%s", args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// wantErrorLine checks the bad-input contract on one run of
// the binary: a non-zero exit, no panic, exactly one line on stderr that
// starts with "farmem: " and contains every string of want
// (case-insensitively).
func wantErrorLine(t *testing.T, code int, stderr string, want ...string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("exit status 0, want non-zero; stderr: %q", stderr)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("panicked:\n%s", stderr)
	}
	line := strings.TrimSuffix(stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Fatalf("want exactly one line on stderr, got %q", stderr)
	}
	if !strings.HasPrefix(line, "farmem: ") {
		t.Errorf("error line %q does not start with \"farmem: \"", line)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
			t.Errorf("error line %q does not name %q", line, w)
		}
	}
}

// TestBadInput checks the contract for bad input: one line on stderr that
// names the problem, a non-zero exit, never a panic.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	small, err := nodeproc.Start(nodeproc.Config{Capacity: 8 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Stop(5 * time.Second)
	locked, err := nodeproc.Start(nodeproc.Config{Capacity: 64 << 20, PageSize: 4096, Token: []byte("right")})
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Stop(5 * time.Second)
	wrongToken := filepath.Join(dir, "token")
	if err := os.WriteFile(wrongToken, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An address where nothing listens: a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	// A binary trace cut in the middle of a record.
	var tr bytes.Buffer
	w := workload.NewBinaryWriter(&tr, 64)
	for i := range 100 {
		if err := w.Write(workload.Access{Write: i%2 == 0, Offset: int64(i) * 4096, Length: 64}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.trace")
	if err := os.WriteFile(truncated, tr.Bytes()[:tr.Len()/2+3], 0o600); err != nil {
		t.Fatal(err)
	}

	quick := []string{"--duration", "1s", "--size", "4MiB", "--rtt-samples", "10", "--no-progress"}
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error line, case-insensitive
	}{
		{"unknown flag", []string{"bench", "--no-such-flag"}, "unknown flag"},
		{"unknown command", []string{"no-such-command"}, "unknown command"},
		{"size does not parse", []string{"bench", "--size", "12XB"}, "--size"},
		{"local does not parse", []string{"bench", "--local", "150%"}, "--local"},
		{"negative duration", []string{"bench", "--duration", "-1s"}, "--duration"},
		{"unknown workload", []string{"bench", "--workload", "nope"}, "nope"},
		{"unknown mode", []string{"bench", "--mode", "nope"}, "--mode"},
		{"missing token file", []string{"bench", "--token-file", filepath.Join(dir, "absent")}, "--token-file"},
		{"region larger than capacity", append([]string{"bench", "--nodes", small.Addr(), "--size", "64MiB"}, quick[:2]...), "capacity"},
		{"wrong token", append([]string{"bench", "--nodes", locked.Addr(), "--token-file", wrongToken}, quick...), "token"},
		{"unreachable memnode", append([]string{"bench", "--nodes", deadAddr}, quick...), deadAddr},
		{"truncated trace", append([]string{"bench", "--workload", "trace", "--trace", truncated}, quick...), "truncated"},
		{"missing trace", append([]string{"bench", "--workload", "trace", "--trace", filepath.Join(dir, "absent.trace")}, quick...), "absent.trace"},
		{"memnode bad capacity", []string{"memnode", "--listen", "127.0.0.1:0", "--capacity", "lots"}, "--capacity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runFarmem(t, tc.args...)
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
			wantErrorLine(t, code, stderr, tc.want)
		})
	}
}
