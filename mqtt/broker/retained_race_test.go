package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// subackHookConn runs hook, once, when the server writes a batch that
// starts with a SUBACK: what a client may do as soon as it has the SUBACK.
type subackHookConn struct {
	net.Conn
	once sync.Once
	hook func()
}

func (c *subackHookConn) Write(b []byte) (int, error) {
	if len(b) > 0 && packet.Type(b[0]>>4) == packet.TypeSuback {
		c.once.Do(c.hook)
	}
	return c.Conn.Write(b)
}

// TestRetainedAfterSuback checks that a message retained after the SUBACK
// went out reaches the new subscription once, routed, with RETAIN 0
// (no retain as published), and not also as one of the subscription's
// retained messages [MQTT-3.3.1-12] [MQTT-3.8.4-4]. The SUBSCRIBE has many
// filters with retained messages so that the server is still at work on
// it when the hook publishes.
func TestRetainedAfterSuback(t *testing.T) {
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{MaxWriteBuffer: 64 << 20, MaxSubscriptions: -1})
			const n = 1000
			ctx := context.Background()
			sub := &packet.Subscribe{PacketID: 1}
			for i := range n {
				tp := fmt.Sprint("a/", i)
				if err := s.Publish(ctx, Message{Topic: tp, Payload: []byte("old"), Retain: true}); err != nil {
					t.Fatal(err)
				}
				sub.Subscriptions = append(sub.Subscriptions, packet.Subscription{Filter: tp})
			}
			sub.Subscriptions = append(sub.Subscriptions, packet.Subscription{Filter: "late/x"})
			a, b := net.Pipe()
			hc := &subackHookConn{Conn: b, hook: func() {
				if err := s.Publish(ctx, Message{Topic: "late/x", Payload: []byte("late"), Retain: true}); err != nil {
					t.Error(err)
				}
			}}
			go s.ServeConn(hc)
			t.Cleanup(func() { a.Close() })
			c := &tclient{t: t, nc: a, r: bufio.NewReader(a), v: v}
			if ack := c.connack(&packet.Connect{ClientID: "late", CleanStart: true}); ack.Code != packet.Success {
				t.Fatalf("CONNACK %v", ack.Code)
			}
			c.send(sub)
			if _, ok := c.recv().(*packet.Suback); !ok {
				t.Fatal("no SUBACK")
			}
			for range n + 2 {
				p := c.recvPub()
				if p.Topic != "late/x" {
					continue
				}
				if p.Retain {
					t.Fatalf("message published after the SUBACK delivered with RETAIN 1")
				}
				return
			}
			t.Fatal("late/x not delivered")
		})
	}
}
