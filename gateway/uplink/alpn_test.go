package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/mqtttest"
)

// awsALPN is the protocol AWS IoT Core requires of MQTT clients with an
// X.509 certificate on port 443.
const awsALPN = "x-amzn-mqtt-ca"

// alpnFront stands for AWS IoT Core's port 443 on loopback: a TLS endpoint
// that takes only clients offering ALPN x-amzn-mqtt-ca with a certificate
// of p's CA, and relays their bytes to the plain MQTT broker at backend.
// refused counts the connections it turned away.
func alpnFront(t *testing.T, p pki, backend string) (addr string, refused *atomic.Int64) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, NextProtos: []string{awsALPN}})
	if err != nil {
		t.Fatal(err)
	}
	refused = new(atomic.Int64)
	var wg sync.WaitGroup
	// mu guards conns.
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Go(func() {
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				// A client offering no protocol the server has fails the
				// handshake; one offering none gets "" and is closed too.
				if err := tc.Handshake(); err != nil || tc.ConnectionState().NegotiatedProtocol != awsALPN {
					refused.Add(1)
					c.Close()
					return
				}
				tc.SetDeadline(time.Time{})
				b, err := net.Dial("tcp", backend)
				if err != nil {
					c.Close()
					return
				}
				track(b)
				go func() { io.Copy(b, c); b.Close() }()
				io.Copy(c, b)
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), refused
}

// TestALPN connects the uplink through an AWS-like TLS endpoint on port
// 443 semantics: with alpn = ["x-amzn-mqtt-ca"] and its client certificate
// it drains its queue; without ALPN the endpoint turns it away and the
// queue stays.
func TestALPN(t *testing.T) {
	b := mqtttest.StartMosquitto(t)
	p := newPKI(t, t.TempDir(), "aws")
	front, refused := alpnFront(t, p, b.Addr)
	const n = 50

	// The cloud side: every message under cloud/alpn/.
	got := make(chan struct{}, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := client.Dial(ctx, client.Options{Addr: b.Addr, ClientID: "alpn-sub", CleanStart: true,
		OnMessage: func(client.Message) { got <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(ctx, client.Subscription{Filter: "cloud/+/telemetry/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		alpn []string
	}{
		{"with-alpn", []string{awsALPN}},
		{"without-alpn", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := buffer.Open(t.TempDir(), buffer.Options{Fsync: buffer.FsyncNever})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			for i := range n {
				r := gateway.Record{Topic: "vehicles/" + tt.name + "/telemetry/d0", Payload: fmt.Appendf(nil, `{"seq":%d}`, i+1), Time: time.Now()}
				rec, _ := r.MarshalBinary()
				if _, err := q.Put(gateway.ClassTelemetry, rec); err != nil {
					t.Fatal(err)
				}
			}
			before := refused.Load()
			u, stop := startUplink(t, Options{URL: "mqtts://" + front, ClientID: "gw-" + tt.name,
				CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey, ALPN: tt.alpn,
				LocalPrefix: "vehicles/" + tt.name, TopicPrefix: "cloud/" + tt.name,
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
				Queue: q, StateDir: t.TempDir()})
			defer stop()
			if tt.alpn == nil {
				deadline := time.NewTimer(20 * time.Second)
				defer deadline.Stop()
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for refused.Load()-before < 2 {
					select {
					case <-tick.C:
					case <-deadline.C:
						t.Fatalf("endpoint refused %d connections, want 2 attempts refused", refused.Load()-before)
					}
				}
				if st := u.Status(); st.Connected || st.QueueDepth != n {
					t.Errorf("without ALPN: status %+v, want not connected and %d queued", st, n)
				}
				return
			}
			for i := range n {
				select {
				case <-got:
				case <-ctx.Done():
					t.Fatalf("%d of %d messages arrived through the ALPN endpoint", i, n)
				}
			}
			if r := refused.Load() - before; r != 0 {
				t.Errorf("endpoint refused %d connections offering %v", r, tt.alpn)
			}
		})
	}
}
