package broker

import (
	"context"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestResumeDropsQueuedForDroppedSubs: the messages queued for an offline
// session under a subscription the ACL no longer allows are not delivered
// when it resumes, and the bytes they held are given back.
func TestResumeDropsQueuedForDroppedSubs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1 := newServer(t, Options{StateDir: dir, ACL: accessACL, AllowAnonymous: ptr(true)})
	c := pipe(t, s1, packet.V311)
	c.connack(userConnect("alice", "tablet", false))
	c.subscribe(1, sub("vehicles/+/alarm/#", 1), sub("vehicles/+/telemetry/#", 1))
	c.disconnect()
	waitOffline(t, s1, "tablet")
	s1.Publish(ctx, Message{Topic: "vehicles/v1/alarm/leak", Payload: []byte("no"), QoS: 1})
	s1.Publish(ctx, Message{Topic: "vehicles/v1/telemetry/seat", Payload: []byte("yes"), QoS: 1})
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s1.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	narrow := []ACLRule{{User: "alice", Permission: "allow", Action: "subscribe", Topic: "vehicles/+/telemetry/#"}}
	s2 := newServer(t, Options{StateDir: dir, ACL: narrow, AllowAnonymous: ptr(true)})
	if st := s2.Stats(); st.QueuedBytes == 0 {
		t.Fatal("restored session holds no bytes")
	}
	c = pipe(t, s2, packet.V311)
	if ack := c.connack(userConnect("alice", "tablet", false)); !ack.SessionPresent {
		t.Fatalf("alice resumes: CONNACK %+v", ack)
	}
	p := c.recvPub()
	if string(p.Payload) != "yes" {
		t.Fatalf("got %s %q, want only the telemetry", p.Topic, p.Payload)
	}
	c.ack(p)
	c.ping()
	if st := s2.Stats(); st.QueuedBytes != 0 {
		t.Errorf("QueuedBytes %d after the one allowed message was acknowledged, want 0", st.QueuedBytes)
	}
}
