package mqtttest

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// connect5 sends a 5.0 CONNECT to addr and returns what the server
// answers before closing (nil when it just closes).
func connect5(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(Timeout))
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60, 0, 0, 1, 'a'}
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 4))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// TestNATS: a node takes MQTT, and answers 5.0 with a 3.1.1 CONNACK,
// return code 1 (what mqtt/client must fall back on).
func TestNATS(t *testing.T) {
	n := StartNATS(t)
	if got := connect5(t, n.Addr); !bytes.Equal(got, []byte{0x20, 2, 0, 1}) {
		t.Errorf("answer to 5.0 CONNECT % x, want 20 02 00 01", got)
	}
	n.Kill()
	if n.Running() {
		t.Fatal("running after Kill")
	}
	n.Start()
	if err := mqttReady(n.Addr); err != nil {
		t.Fatal(err)
	}
}

// TestRabbitMQ: the broker takes 3.1.1 and closes a 5.0 connection
// without an answer.
func TestRabbitMQ(t *testing.T) {
	start := time.Now()
	r := StartRabbitMQ(t)
	t.Logf("rabbitmq ready in %v", time.Since(start).Round(time.Millisecond))
	if got := connect5(t, r.Addr); len(got) != 0 {
		t.Errorf("answer to 5.0 CONNECT % x, want a close", got)
	}
}
