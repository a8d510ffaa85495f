package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestDisconnectReadable (issue row 15): when the server ends a
// connection with a DISCONNECT while the client is still sending, it shuts
// down its writing side and drains the input for a moment before closing,
// so the client reads the reason code and a clean end of stream instead
// of a reset.
func TestDisconnectReadable(t *testing.T) {
	s := newServer(t, Options{})
	addr := serveTCP(t, s)
	for i := range 20 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &tclient{t: t, nc: nc, r: bufio.NewReader(nc), v: packet.V5}
		c.connack(&packet.Connect{ClientID: "d", CleanStart: true, KeepAlive: 60})
		// A second CONNECT (a protocol error [MQTT-3.1.0-2]) followed,
		// in the same stream, by more packets the server will not read.
		b, _ := packet.Append(nil, &packet.Connect{Version: packet.V5, ClientID: "d"}, packet.V5)
		b = append(b, bytes.Repeat([]byte{0xC0, 0x00}, 8<<10)...)
		go func() {
			nc.Write(b)
			nc.(*net.TCPConn).CloseWrite()
		}()
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got []packet.Packet
		for {
			p, err := packet.Read(c.r, packet.V5, 0)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("run %d: read after %v: %v, want the DISCONNECT then EOF", i, types(got), err)
				}
				break
			}
			got = append(got, p)
		}
		if len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.ProtocolError {
			t.Fatalf("run %d: got %v, want DISCONNECT 0x82", i, types(got))
		}
		nc.Close()
	}
}

func types(ps []packet.Packet) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Type().String())
	}
	return out
}

// TestConnackTooLarge (issue row 14): a 5.0 CONNACK that does not fit the
// client's Maximum Packet Size is not sent, and the connection is closed
// at once [MQTT-3.1.2-24], its will not published.
func TestConnackTooLarge(t *testing.T) {
	s := newServer(t, Options{})
	w := connect(t, s, packet.V5, "w", true)
	w.subscribe(1, sub("will/#", 0))
	c := pipe(t, s, packet.V5)
	c.send(&packet.Connect{Version: packet.V5, ClientID: "tiny", CleanStart: true, KeepAlive: 60,
		Props: packet.Properties{MaximumPacketSize: 2},
		Will:  &packet.Will{Topic: "will/tiny", Payload: []byte("gone")}})
	if got := c.closed(); len(got) != 0 {
		t.Errorf("got %v, want the connection closed without CONNACK", types(got))
	}
	w.quiet(50 * time.Millisecond)
	// One that fits is sent.
	c = pipe(t, s, packet.V5)
	if ack := c.connack(&packet.Connect{ClientID: "small", CleanStart: true, Props: packet.Properties{MaximumPacketSize: 64}}); ack.Code != packet.Success {
		t.Errorf("CONNACK %v", ack.Code)
	}
}

// TestProtocolName (issue row 14): a CONNECT whose protocol name is not
// MQTT's is closed without CONNACK [MQTT-3.1.2-1] [MQTT-3.1.4-1].
func TestProtocolName(t *testing.T) {
	s := newServer(t, Options{})
	c := pipe(t, s, packet.V311)
	c.raw([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0})
	if got := c.closed(); len(got) != 0 {
		t.Errorf("got %v, want the connection closed without CONNACK", types(got))
	}
}

// TestControlCharacters (issue row 14): control characters in a topic
// name, a topic filter or a will topic are refused, as Mosquitto does
// (client ids and user names: TestReservedUserNames).
func TestControlCharacters(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			s := newServer(t, Options{})
			c := connect(t, s, v, "sub", true)
			sa := c.subscribe(1, sub("a/\x07/#", 0), sub("a/ok", 0))
			if sa.Codes[0] != packet.TopicFilterInvalid && sa.Codes[0] != 0x80 || sa.Codes[1] != 0 {
				t.Errorf("SUBACK %v, want [invalid 0]", sa.Codes)
			}
			w := pipe(t, s, v)
			if ack := w.connack(&packet.Connect{ClientID: "w", CleanStart: true, Will: &packet.Will{Topic: "a/\u009b", Payload: []byte("x")}}); ack.Code == packet.Success {
				t.Error("will topic with U+009B accepted")
			}
			p := connect(t, s, v, "pub", true)
			p.send(&packet.Publish{Topic: "a/\x1b[2J", Payload: []byte("x")})
			got := p.closed()
			if v == packet.V5 && (len(got) != 1 || got[0].(*packet.Disconnect).Code != packet.TopicNameInvalid) {
				t.Errorf("got %v, want DISCONNECT 0x90", types(got))
			}
		})
	}
}

// TestWebSocketDisconnectReadable (issue row 15) over WebSocket: the
// server's DISCONNECT is followed by a normal close frame, not a dropped
// connection, while the client still sends.
func TestWebSocketDisconnectReadable(t *testing.T) {
	_, addr := wsServer(t, Options{AllowAnonymous: ptr(true)})
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	ws, _, err := d.Dial("ws://"+addr+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	b, _ := packet.Append(nil, &packet.Connect{Version: packet.V5, ClientID: "w", CleanStart: true}, packet.V5)
	ws.WriteMessage(websocket.BinaryMessage, b)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || msg[0] != 0x20 {
		t.Fatalf("CONNACK % x %v", msg, err)
	}
	// A second CONNECT, then more packets the server will not act upon.
	b = append(b, bytes.Repeat([]byte{0xC0, 0x00}, 1024)...)
	ws.WriteMessage(websocket.BinaryMessage, b)
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) < 3 || msg[0] != 0xE0 || msg[2] != byte(packet.ProtocolError) {
		t.Fatalf("got % x %v, want DISCONNECT 0x82", msg, err)
	}
	_, _, err = ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the DISCONNECT: %v, want a normal close frame", err)
	}
}
