// Command mqttbroker runs only edgegw's embedded MQTT broker, for
// benchmarks and interop checks against other brokers (see
// scripts/bench-broker.sh). It logs nothing per message; it prints the
// bound address once on stdout and stops on SIGINT or SIGTERM.
//
//	mqttbroker -listen 127.0.0.1:1883 -state-dir /tmp/state
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/mqtt/broker"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqttbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o broker.Options
	listen := fs.String("listen", "127.0.0.1:1883", "TCP `address` (port 0: any free port)")
	fs.StringVar(&o.StateDir, "state-dir", "", "persistence `directory` (empty: memory only)")
	fs.IntVar(&o.MaxConnections, "max-connections", 10000, "concurrent connections (<0 unlimited)")
	fs.IntVar(&o.MaxInflight, "max-inflight", 0, "QoS 1/2 messages in flight toward a client (0: broker default)")
	fs.IntVar(&o.MaxQueued, "max-queued", 0, "messages queued per session (0: broker default)")
	fs.IntVar(&o.ReceiveMaximum, "receive-maximum", 0, "unacknowledged QoS 1/2 publications a client may send (0: broker default)")
	fs.IntVar(&o.MaxWriteBuffer, "max-write-buffer", 0, "bytes waiting to be written to one client (0: broker default)")
	fs.IntVar(&o.MaxRetained, "max-retained", 0, "retained messages held (0: broker default, <0 unlimited)")
	fs.IntVar(&o.MaxSubscriptions, "max-subscriptions", 0, "subscriptions per client (0: broker default, <0 unlimited)")
	fs.IntVar(&o.MaxPendingConnections, "max-pending-connections", 0, "connections not logged in yet (0: broker default, <0 unlimited)")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 0, "time to send CONNECT (0: broker default)")
	fs.Int64Var(&o.MaxSessionBytes, "max-session-bytes", 0, "bytes queued and in flight per session (0: broker default, <0 unlimited)")
	fs.Int64Var(&o.MaxQueuedBytes, "max-queued-bytes", 0, "bytes queued and in flight, all sessions (0: broker default, <0 unlimited)")
	fs.Int64Var(&o.MaxRetainedBytes, "max-retained-bytes", 0, "bytes of clients' retained messages (0: broker default, <0 unlimited)")
	fs.Int64Var(&o.MaxRetainedMessageBytes, "max-retained-message-bytes", 0, "largest retained message stored (0: broker default, <0 unlimited)")
	fs.IntVar(&o.MaxSessions, "max-sessions", 0, "persistent sessions (0: broker default, <0 unlimited)")
	fs.StringVar(&o.PasswordFile, "password-file", "", "`file` of user:hash lines; anonymous access is then refused")
	sys := fs.Duration("sys-interval", 0, "$SYS statistics interval (0: broker default, <0 never)")
	verbose := fs.Bool("verbose", false, "log connections and errors on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.SysInterval = *sys
	if *verbose {
		o.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	anon := o.PasswordFile == ""
	o.AllowAnonymous = &anon

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := broker.New(o)
	if err != nil {
		fmt.Fprintln(stderr, "mqttbroker:", err)
		return 1
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "mqttbroker:", err)
		return 1
	}
	fmt.Fprintln(stdout, "mqttbroker listening on", l.Addr())
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := s.Shutdown(sctx); err == nil {
		err = serr
	}
	if err != nil && !errors.Is(err, broker.ErrServerClosed) {
		fmt.Fprintln(stderr, "mqttbroker:", err)
		return 1
	}
	return 0
}
