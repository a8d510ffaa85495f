package broker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// recvWithin reads the next packet, waiting up to d of (bubble) time.
func (c *tclient) recvWithin(d time.Duration) (packet.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	return packet.Read(c.r, c.v, 0)
}

func TestKeepAlive(t *testing.T) {
	// The server closes a connection silent for 1.5 × keep alive
	// [MQTT-3.1.2-22], 5.0 with DISCONNECT 0x8D, and publishes the will
	// [MQTT-3.1.2-8].
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newServer(t, Options{})
				watch := connect(t, s, packet.V311, "watch", true)
				watch.subscribe(1, sub("lw", 0))
				c := pipe(t, s, v)
				c.connack(&packet.Connect{ClientID: "k", CleanStart: true, KeepAlive: 10,
					Will: &packet.Will{Topic: "lw", Payload: []byte("dead")}})
				start := time.Now()
				time.Sleep(14 * time.Second)
				c.ping() // PINGREQ resets the timer [MQTT-3.1.2-23]
				p, err := c.recvWithin(time.Minute)
				if v == packet.V5 {
					if d, ok := p.(*packet.Disconnect); !ok || d.Code != packet.KeepAliveTimeout {
						t.Fatalf("got %v %v, want DISCONNECT 0x8D", p, err)
					}
				}
				// Never early; late by at most the re-arm slack.
				if got := time.Since(start); got < 29*time.Second || got > 29*time.Second+keepAliveSlack {
					t.Errorf("closed after %v, want 29s (14s + 1.5 × 10s) to 29s + %v", got, keepAliveSlack)
				}
				if w := watch.recvPub(); string(w.Payload) != "dead" {
					t.Errorf("will %q", w.Payload)
				}
			})
		})
	}
}

func TestWillDelay(t *testing.T) {
	// [MQTT-3.1.3-9]: published after the delay, not if the session
	// resumes first.
	for _, resume := range []bool{false, true} {
		t.Run(map[bool]string{false: "published", true: "resumed"}[resume], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newServer(t, Options{})
				watch := connect(t, s, packet.V311, "watch", true)
				watch.subscribe(1, sub("wd", 0))
				cp := &packet.Connect{ClientID: "w", KeepAlive: 0, Props: packet.Properties{SessionExpiry: 100},
					Will: &packet.Will{Topic: "wd", Payload: []byte("x"), Props: packet.Properties{WillDelay: 10}}}
				c := pipe(t, s, packet.V5)
				c.connack(cp)
				c.nc.Close()
				time.Sleep(9 * time.Second)
				synctest.Wait()
				if resume {
					c = pipe(t, s, packet.V5)
					cp.Version, cp.Will = 0, nil
					if ack := c.connack(cp); !ack.SessionPresent {
						t.Fatal("session not present")
					}
					time.Sleep(5 * time.Second)
					synctest.Wait()
					watch.quiet(time.Second)
					return
				}
				time.Sleep(time.Second)
				if p, err := watch.recvWithin(time.Millisecond); err != nil || p.(*packet.Publish).Topic != "wd" {
					t.Fatalf("got %v %v, want the will at 10s", p, err)
				}
			})
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	// [MQTT-4.1.0-2]: the session is discarded after its expiry interval.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{})
		cp := &packet.Connect{ClientID: "e", Props: packet.Properties{SessionExpiry: 5}}
		c := pipe(t, s, packet.V5)
		c.connack(cp)
		c.disconnect()
		time.Sleep(4 * time.Second)
		c = pipe(t, s, packet.V5)
		cp.Version = 0
		if ack := c.connack(cp); !ack.SessionPresent {
			t.Fatal("session gone after 4s of 5")
		}
		c.disconnect()
		time.Sleep(6 * time.Second)
		c = pipe(t, s, packet.V5)
		cp.Version = 0
		if ack := c.connack(cp); ack.SessionPresent {
			t.Fatal("session present after expiry")
		}
	})
}

func TestMessageExpiry(t *testing.T) {
	// [MQTT-3.3.2-5]: expired messages are not delivered; [MQTT-3.3.2-6]:
	// the interval sent is what is left.
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{})
		cp := &packet.Connect{ClientID: "m", Props: packet.Properties{SessionExpiry: 100}}
		c := pipe(t, s, packet.V5)
		c.connack(cp)
		c.subscribe(1, sub("me/#", 1))
		c.disconnect()
		ctx := context.Background()
		s.Publish(ctx, Message{Topic: "me/short", QoS: 1, Expiry: 2 * time.Second})
		s.Publish(ctx, Message{Topic: "me/long", QoS: 1, Expiry: 10 * time.Second})
		time.Sleep(4 * time.Second)
		c = pipe(t, s, packet.V5)
		cp.Version = 0
		c.connack(cp)
		got := c.recvPub()
		if got.Topic != "me/long" || got.Props.MessageExpiry != 6 {
			t.Errorf("got %s expiry %d, want me/long expiry 6", got.Topic, got.Props.MessageExpiry)
		}
	})
}
