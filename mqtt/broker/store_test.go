package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// persistScenario leaves a persistent session with a subscription, one
// in-flight and two queued QoS 1 messages, an unreleased incoming QoS 2
// packet identifier and a retained message in s.
func persistScenario(t *testing.T, s *Server) {
	t.Helper()
	cp := &packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600}}
	c := pipe(t, s, packet.V5)
	c.connack(cp)
	c.subscribe(1, sub("p/#", 1))
	c.send(&packet.Publish{Topic: "other", QoS: 2, PacketID: 9})
	c.recv() // PUBREC, no PUBREL yet
	ctx := context.Background()
	s.Publish(ctx, Message{Topic: "p/ret", Payload: []byte("kept"), Retain: true})
	first := c.recvPub()
	c.ack(first)
	s.Publish(ctx, Message{Topic: "p/1", Payload: []byte("1"), QoS: 1})
	c.recvPub() // in flight, unacknowledged
	c.nc.Close()
	s.Publish(ctx, Message{Topic: "p/2", Payload: []byte("2"), QoS: 1})
	s.Publish(ctx, Message{Topic: "p/3", Payload: []byte("3"), QoS: 1})
}

// checkRestored reconnects to s and expects what persistScenario left.
func checkRestored(t *testing.T, s *Server) {
	t.Helper()
	c := pipe(t, s, packet.V5)
	ack := c.connack(&packet.Connect{ClientID: "car", Props: packet.Properties{SessionExpiry: 3600}})
	if !ack.SessionPresent {
		t.Fatal("session not restored")
	}
	got := c.recvPub()
	if string(got.Payload) != "1" || !got.Dup {
		t.Fatalf("first %+v, want DUP resend of 1", got)
	}
	c.ack(got)
	for _, want := range []string{"2", "3"} {
		got := c.recvPub()
		if string(got.Payload) != want {
			t.Fatalf("got %q, want %q", got.Payload, want)
		}
		c.ack(got)
	}
	// The QoS 2 identifier is still known: PUBREL completes [MQTT-4.3.3].
	c.send(&packet.Pubrel{PacketID: 9})
	if pc := c.recv().(*packet.Pubcomp); pc.Code != packet.Success {
		t.Errorf("PUBCOMP %v, want success", pc.Code)
	}
	// The subscription survived, and so did the retained message.
	c.subscribe(2, sub("p/ret", 0))
	if got := c.recvPub(); string(got.Payload) != "kept" {
		t.Errorf("retained %q", got.Payload)
	}
}

func TestPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s1, err := New(Options{StateDir: dir, SysInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	persistScenario(t, s1)
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := newServer(t, Options{StateDir: dir})
	checkRestored(t, s2)
}

func TestPersistAfterCrash(t *testing.T) {
	// Without Shutdown (kill -9), state older than SyncInterval is on disk.
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s1 := newServer(t, Options{StateDir: dir, SyncInterval: time.Second})
		persistScenario(t, s1)
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		s2 := newServer(t, Options{StateDir: dir})
		checkRestored(t, s2)
	})
}

func TestDamagedState(t *testing.T) {
	for _, tc := range []struct {
		name string
		data func(good []byte) []byte
	}{
		{"garbage", func([]byte) []byte { return []byte("not a snapshot at all") }},
		{"empty", func([]byte) []byte { return nil }},
		{"torn", func(g []byte) []byte { return g[:len(g)/2] }},
		{"bit flip", func(g []byte) []byte { g = append([]byte(nil), g...); g[len(g)/2] ^= 1; return g }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s1, _ := New(Options{StateDir: dir, SysInterval: -1})
			s1.Publish(context.Background(), Message{Topic: "r", Payload: []byte("x"), Retain: true})
			s1.Shutdown(context.Background())
			path := filepath.Join(dir, stateFile)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(path, tc.data(good), 0o600)
			s := newServer(t, Options{StateDir: dir}) // never refuses to start
			if n := s.Stats().Retained; n != 0 {
				t.Errorf("%d retained from a damaged file", n)
			}
		})
	}
}
