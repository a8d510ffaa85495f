package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/supervisor"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// pipeListener hands out the server ends of net.Pipe connections.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }

// get dials l, sends one keep-alive GET /healthz and reads the answer;
// the connection stays open.
func (l *pipeListener) get() (net.Conn, int, error) {
	a, b := net.Pipe()
	l.conns <- b
	if _, err := fmt.Fprint(a, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		return a, 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(a), nil)
	if err != nil {
		return a, 0, err
	}
	resp.Body.Close()
	return a, resp.StatusCode, nil
}

func TestHealthServerSurvivesIdleKeepAlives(t *testing.T) {
	// Row 4 of issue 13: thousands of idle keep-alives to the health
	// port exhausted the process's file descriptors. Now at most
	// maxConns are open, and idle ones are closed, so /healthz answers
	// again once they idle out.
	synctest.Test(t, func(t *testing.T) {
		lim := healthLimits{readHeader: time.Second, read: 2 * time.Second, write: 2 * time.Second, idle: 3 * time.Second, maxConns: 4}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		hs := newHealthServer(h, lim)
		l := newPipeListener()
		go hs.Serve(limitListener(l, lim.maxConns))
		defer hs.Close()
		for i := range lim.maxConns {
			c, code, err := l.get()
			if err != nil || code != http.StatusOK {
				t.Fatalf("keep-alive %d: %d %v", i, code, err)
			}
			defer c.Close()
		}
		answered := make(chan int, 1)
		start := time.Now()
		go func() {
			c, code, err := l.get()
			if err != nil {
				t.Errorf("GET after the flood: %v", err)
			}
			if c != nil {
				c.Close()
			}
			answered <- code
		}()
		synctest.Wait()
		select {
		case code := <-answered:
			t.Fatalf("answered %d over the connection cap", code)
		default:
		}
		select {
		case code := <-answered:
			if code != http.StatusOK {
				t.Errorf("status %d, want 200", code)
			}
			if got := time.Since(start); got != lim.idle {
				t.Errorf("answered after %v, want %v (the idle timeout)", got, lim.idle)
			}
		case <-time.After(time.Minute):
			t.Fatal("/healthz never answered: idle keep-alives hold every slot")
		}
	})
}

func TestHealthzReportsBroker(t *testing.T) {
	// Row 4 of issue 13: with the MQTT port closed for good, /healthz
	// said ok and the watchdog was fed.
	q, err := buffer.Open(t.TempDir(), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	srv, err := broker.New(broker.Options{SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	d := &daemon{q: q, srv: srv}
	d.setField(&field{cfg: &config.Config{}, sup: supervisor.New(supervisor.Options{})})

	get := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		d.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		var body map[string]any
		json.NewDecoder(rec.Body).Decode(&body)
		return rec.Code, body
	}
	if code, body := get(); code != http.StatusOK || body["status"] != "ok" || !d.alive() {
		t.Fatalf("healthy broker: %d %v alive=%v", code, body, d.alive())
	}
	ln.Close() // the listener dies under the broker
	<-served
	code, body := get()
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Errorf("broker listener stopped: /healthz %d %v, want 503 unavailable", code, body)
	}
	if b, _ := body["broker"].(map[string]any); !strings.Contains(fmt.Sprint(b["error"]), "stopped") {
		t.Errorf("broker error %v", body["broker"])
	}
	if d.alive() {
		t.Error("alive() with the broker's listener stopped: the watchdog would be fed")
	}
}
