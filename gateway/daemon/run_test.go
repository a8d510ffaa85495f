package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

// A start that fails once the queue is open and the broker listens (here
// the health port is taken) goes through the one shutdown: when Run
// returns, the broker's port and the queue's directory are free again.
func TestRunFailedStartStopsWhatStarted(t *testing.T) {
	brokerAddr, healthAddr := demoEnv(t, "mqtt://127.0.0.1:1")
	busy, err := net.Listen("tcp", healthAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, err := config.Load("../../configs/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), cfg, testRegistry(), nil)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run = %v, want the health listener's EADDRINUSE", err)
	}
	ln, err := net.Listen("tcp", brokerAddr)
	if err != nil {
		t.Errorf("broker port after Run: %v", err)
	} else {
		ln.Close()
	}
	q, err := openQueue(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("queue after Run: %v", err)
	}
	q.Close()
}
