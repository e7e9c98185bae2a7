// Command jmlgate-load measures a running jmlgate against the reference
// server of internal/loadgen, in one run on one machine, and prints the
// ratios the performance targets are stated in.
//
//	jmlgate-load -target http://127.0.0.1:8080 -token "$TOKEN" -pid "$(pgrep -x jmlgate)"
//
// The token may also come from $JMLGATE_LOAD_TOKEN, which keeps it out of ps.
//
// By default the reference runs as a child process (this binary with
// -serve-reference), so that it, like jmlgate, has its own Go runtime and
// competes with the load generator for the CPUs the same way; -reference-inproc
// serves it inside this process instead, which flatters it on a 2-core machine.
// With -serve-reference ADDR the binary only serves the reference, e.g. as a
// sanity-check target, against which every ratio should be about 1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jmlgate/jmlgate/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jmlgate-load:", err)
	}
	os.Exit(code)
}

// run returns 0 when every criterion passed, 1 when one failed, 2 on error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("jmlgate-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		target    = fs.String("target", "", "jmlgate base URL, e.g. http://127.0.0.1:8080")
		token     = fs.String("token", getenv("JMLGATE_LOAD_TOKEN"), "bearer token (default $JMLGATE_LOAD_TOKEN)")
		reference = fs.Bool("reference", true, "start a reference on a random loopback port with a temp db, as a child process")
		inproc    = fs.Bool("reference-inproc", false, "with -reference: serve the reference inside this process instead")
		refURL    = fs.String("reference-url", "", "use an already running reference at this URL instead of -reference")
		pid       = fs.Int("pid", 0, "target server pid, to report its peak RSS (VmHWM)")
		users     = fs.Int("users", 100000, "users seeded into both servers before measuring")
		clients   = fs.Int("clients", 16, "concurrent closed-loop clients")
		duration  = fs.Duration("duration", 10*time.Second, "length of each measured run")
		ops       = fs.Int("ops", 0, "if > 0, requests per measured run instead of -duration")
		warmup    = fs.Duration("warmup", 2*time.Second, "unmeasured run per scenario and server before its first measured run")
		rounds    = fs.Int("rounds", 1, "measured runs per scenario and server, alternating which goes first; more rounds average out a noisy machine")
		scenarios = fs.String("scenarios", "lookup,page,create,patch", "comma-separated scenarios, run in this order")
		seedBulk  = fs.Int("seed-bulk", 0, "seed the target through /scim/v2/Bulk with this many operations per request (0: POST /Users)")
		asJSON    = fs.Bool("json", false, "print the report as JSON")
		serve     = fs.String("serve-reference", "", "only serve the reference on this address (e.g. 127.0.0.1:0)")
		dbPath    = fs.String("db", "", "with -serve-reference: SQLite file (default: a temp file)")
		eofExit   = fs.Bool("exit-on-eof", false, "with -serve-reference: stop when stdin closes (used for the child reference)")
	)
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if *token == "" {
		return 2, errors.New("no token: set -token or $JMLGATE_LOAD_TOKEN")
	}
	if *serve != "" {
		if *eofExit {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
		}
		return serveReference(ctx, *serve, *dbPath, *token, stdout)
	}
	if *target == "" {
		return 2, errors.New("-target is required")
	}
	sc, err := loadgen.ParseScenarios(*scenarios)
	if err != nil {
		return 2, err
	}

	base, refPID := *refURL, 0
	if base == "" {
		if !*reference {
			return 2, errors.New("nothing to compare against: set -reference or -reference-url")
		}
		start := startChildReference
		if *inproc {
			start = startReference
		}
		url, pid, stopRef, err := start(*token, stderr)
		if err != nil {
			return 2, err
		}
		defer stopRef()
		base, refPID = url, pid
		fmt.Fprintf(stderr, "reference listening on %s\n", base)
	}
	ref := loadgen.NewTarget("reference", base, *token, *clients)
	defer ref.Close()
	tgt := loadgen.NewTarget("jmlgate", *target, *token, *clients)
	defer tgt.Close()

	rep, err := loadgen.Compare(ctx, ref, tgt, loadgen.CompareOptions{
		Users:        *users,
		SeedBulk:     *seedBulk,
		Scenarios:    sc,
		Run:          loadgen.RunOptions{Clients: *clients, Duration: *duration, Ops: *ops},
		Warmup:       *warmup,
		Rounds:       *rounds,
		PID:          *pid,
		ReferencePID: refPID,
		Log:          stderr,
	})
	if err != nil {
		return 2, err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(stdout, "jmlgate")
	}
	if err != nil {
		return 2, err
	}
	if !rep.Pass {
		return 1, nil
	}
	return 0, nil
}

// startChildReference runs this binary with -serve-reference on a random
// loopback port as a child process, passing the token in its environment.
// The child exits when stop closes its stdin, or when this process dies.
func startChildReference(token string, stderr io.Writer) (url string, pid int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(exe, "-serve-reference", "127.0.0.1:0", "-exit-on-eof")
	cmd.Env = append(os.Environ(), "JMLGATE_LOAD_TOKEN="+token)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start reference: %w", err)
	}
	stop = func() {
		in.Close()
		cmd.Wait()
	}
	// First line: "reference listening on http://ADDR pid N".
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 6 || !strings.HasPrefix(f[3], "http://") {
		stop()
		return "", 0, nil, fmt.Errorf("reference child did not start: %q", line)
	}
	return f[3], cmd.Process.Pid, stop, nil
}

// startReference serves a reference inside this process with a temp
// database on a random loopback port; stop shuts it down and removes the
// database.
func startReference(token string, _ io.Writer) (url string, pid int, stop func(), err error) {
	dir, err := os.MkdirTemp("", "jmlgate-load-ref-")
	if err != nil {
		return "", 0, nil, err
	}
	ref, err := loadgen.NewReference(filepath.Join(dir, "ref.db"), token)
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ref.Close()
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	srv := &http.Server{Handler: ref, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), 0, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		ref.Close()
		os.RemoveAll(dir)
	}, nil
}

// serveReference serves only the reference until ctx ends, printing its URL
// and pid on stdout.
func serveReference(ctx context.Context, addr, dbPath, token string, stdout io.Writer) (int, error) {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "jmlgate-load-ref-")
		if err != nil {
			return 2, err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "ref.db")
	}
	ref, err := loadgen.NewReference(dbPath, token)
	if err != nil {
		return 2, err
	}
	defer ref.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 2, err
	}
	srv := &http.Server{Handler: ref, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "reference listening on http://%s pid %d\n", ln.Addr(), os.Getpid())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return 2, err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return 0, srv.Shutdown(sctx)
}
