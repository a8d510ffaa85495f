package mqtttest

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func expect[P packet.Packet](t *testing.T, c *Conn) P {
	t.Helper()
	got := c.Recv()
	p, ok := got.(P)
	if !ok {
		t.Fatalf("received %v %+v, want %T", got.Type(), got, p)
	}
	return p
}

func connect(t *testing.T, addr string, v packet.Version, id string, clean bool) (*Conn, *packet.Connack) {
	t.Helper()
	c := Dial(t, addr, v)
	p := &packet.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	if v == packet.V5 && !clean {
		p.Props.SessionExpiry = 3600
	}
	ack := c.Connect(p)
	if ack.Code != packet.Success {
		t.Fatalf("CONNECT %s: %v", id, ack.Code)
	}
	return c, ack
}

// TestMosquittoInterop runs the codec against a real peer: CONNECT,
// SUBSCRIBE, PUBLISH at QoS 1 and 2 with properties, topic aliases,
// PINGREQ, UNSUBSCRIBE and DISCONNECT, at 3.1.1 and 5.0.
func TestMosquittoInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := Mosquitto(t)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		t.Run(v.String(), func(t *testing.T) {
			sub, _ := connect(t, addr, v, "sub-"+v.String(), true)
			s := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
				{Filter: "it/" + v.String() + "/#", QoS: 2}}}
			if v == packet.V5 {
				s.Props.SubscriptionIDs = []uint32{7}
			}
			sub.Send(s)
			if sa := expect[*packet.Suback](t, sub); sa.PacketID != 1 || !cmp.Equal(sa.Codes, []packet.ReasonCode{packet.GrantedQoS2}) {
				t.Fatalf("SUBACK = %+v", sa)
			}

			pub, _ := connect(t, addr, v, "pub-"+v.String(), true)
			topic := "it/" + v.String() + "/a"
			p1 := &packet.Publish{Topic: topic, Payload: []byte(`{"v":1}`), QoS: 1, PacketID: 10}
			if v == packet.V5 {
				p1.Props = packet.Properties{PayloadFormat: 1, ContentType: "application/json",
					ResponseTopic: "reply/x", CorrelationData: []byte{1, 2, 3},
					User: []packet.UserProperty{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}, {Key: "a", Value: "0"}}}
			}
			pub.Send(p1)
			if a := expect[*packet.Puback](t, pub); a.PacketID != 10 {
				t.Fatalf("PUBACK = %+v", a)
			}
			p2 := &packet.Publish{Topic: topic, Payload: []byte("two"), QoS: 2, PacketID: 11}
			pub.Send(p2)
			if a := expect[*packet.Pubrec](t, pub); a.PacketID != 11 {
				t.Fatalf("PUBREC = %+v", a)
			}
			pub.Send(&packet.Pubrel{PacketID: 11})
			if a := expect[*packet.Pubcomp](t, pub); a.PacketID != 11 {
				t.Fatalf("PUBCOMP = %+v", a)
			}

			got := expect[*packet.Publish](t, sub)
			want := *p1
			want.PacketID = got.PacketID
			if v == packet.V5 {
				want.Props.SubscriptionIDs = []uint32{7}
			}
			if diff := cmp.Diff(&want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("QoS 1 message (-sent +received):\n%s", diff)
			}
			sub.Send(&packet.Puback{PacketID: got.PacketID})
			got = expect[*packet.Publish](t, sub)
			if got.QoS != 2 || string(got.Payload) != "two" {
				t.Errorf("QoS 2 message = %+v", got)
			}
			sub.Send(&packet.Pubrec{PacketID: got.PacketID})
			if rel := expect[*packet.Pubrel](t, sub); rel.PacketID != got.PacketID {
				t.Errorf("PUBREL = %+v, want id %d", rel, got.PacketID)
			}
			sub.Send(&packet.Pubcomp{PacketID: got.PacketID})

			if v == packet.V5 {
				// A topic alias set, then used with an empty topic
				// [MQTT-3.3.2-12].
				pub.Send(&packet.Publish{Topic: topic + "/alias", Payload: []byte("a1"), Props: packet.Properties{TopicAlias: 1}})
				pub.Send(&packet.Publish{Payload: []byte("a2"), Props: packet.Properties{TopicAlias: 1}})
				for _, want := range []string{"a1", "a2"} {
					got := expect[*packet.Publish](t, sub)
					if got.Topic != topic+"/alias" || string(got.Payload) != want {
						t.Errorf("aliased message = %q %q, want %q %q", got.Topic, got.Payload, topic+"/alias", want)
					}
				}
			}

			pub.Send(&packet.Pingreq{})
			expect[*packet.Pingresp](t, pub)
			sub.Send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"it/" + v.String() + "/#"}})
			if ua := expect[*packet.Unsuback](t, sub); ua.PacketID != 2 {
				t.Errorf("UNSUBACK = %+v", ua)
			}
			pub.Send(&packet.Disconnect{})
			if _, err := pub.TryRecv(); err == nil {
				t.Errorf("connection still open after DISCONNECT")
			}
		})
	}
}

// TestMosquittoMalformed checks that Mosquitto refuses what the codec
// refuses to encode, sending DISCONNECT 0x81 in 5.0.
func TestMosquittoMalformed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	addr := Mosquitto(t)
	c, _ := connect(t, addr, packet.V5, "bad", true)
	c.SendRaw([]byte{0x36, 7, 0, 3, 'a', '/', 'b', 0, 1}) // QoS 3 [MQTT-3.3.1-4]
	p, err := c.TryRecv()
	if err == nil {
		d, ok := p.(*packet.Disconnect)
		if !ok || d.Code != packet.MalformedPacket && d.Code != packet.ProtocolError {
			t.Errorf("answer to QoS 3 PUBLISH = %+v, want DISCONNECT 0x81", p)
		}
	}
}

// TestMosquittoRestart checks Stop/Start and Kill/Start: the address
// stays, and a persistent session with a queued QoS 1 message survives a
// graceful restart.
func TestMosquittoRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mosquitto")
	}
	b := StartMosquitto(t)
	for _, v := range []packet.Version{packet.V311, packet.V5} {
		id := "persist-" + v.String()
		sub, ack := connect(t, b.Addr, v, id, false)
		if ack.SessionPresent {
			t.Fatalf("%s: session present on first connect", id)
		}
		sub.Send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "q/" + id, QoS: 1}}})
		expect[*packet.Suback](t, sub)
		sub.Send(&packet.Disconnect{})

		pub, _ := connect(t, b.Addr, v, "pub-"+id, true)
		pub.Send(&packet.Publish{Topic: "q/" + id, Payload: []byte("queued"), QoS: 1, PacketID: 1})
		expect[*packet.Puback](t, pub)
	}

	b.Stop()
	if b.Running() {
		t.Fatal("Running after Stop")
	}
	b.Start()

	for _, v := range []packet.Version{packet.V311, packet.V5} {
		id := "persist-" + v.String()
		sub, ack := connect(t, b.Addr, v, id, false)
		if !ack.SessionPresent {
			t.Fatalf("%s: no session after restart", id)
		}
		got := expect[*packet.Publish](t, sub)
		if got.Topic != "q/"+id || string(got.Payload) != "queued" || got.QoS != 1 {
			t.Errorf("%s: after restart got %+v", id, got)
		}
		sub.Send(&packet.Puback{PacketID: got.PacketID})
	}

	b.Kill()
	b.Start()
	c, _ := connect(t, b.Addr, packet.V311, "after-kill", true)
	c.Send(&packet.Pingreq{})
	expect[*packet.Pingresp](t, c)
}

func TestPipes(t *testing.T) {
	for name, mk := range map[string]func() (a, b *Conn){
		"Pipe": func() (*Conn, *Conn) {
			a, b := Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			return NewConn(t, a, packet.V5), NewConn(t, b, packet.V5)
		},
		"TCPPipe": func() (*Conn, *Conn) {
			a, b := TCPPipe(t)
			return NewConn(t, a, packet.V5), NewConn(t, b, packet.V5)
		},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := mk()
			want := &packet.Publish{Topic: "x", Payload: []byte(fmt.Sprint(name)), QoS: 1, PacketID: 3}
			raw, err := packet.Append(nil, want, packet.V5)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := a.C.Write(raw) // a synchronous pipe needs a reader
				errc <- err
			}()
			got := b.Recv()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(packet.Packet(want), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-sent +received):\n%s", diff)
			}
		})
	}
}
