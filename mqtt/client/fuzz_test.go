package client

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// FuzzInbound feeds arbitrary bytes from a server after CONNACK: the
// client must not panic, whatever packets (or garbage) arrive.
func FuzzInbound(f *testing.F) {
	for _, p := range []packet.Packet{
		&packet.Publish{Topic: "a/b", Payload: []byte("x"), QoS: 2, PacketID: 7},
		&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Dup: true},
		&packet.Pubrel{PacketID: 7},
		&packet.Puback{PacketID: 1},
		&packet.Pubrec{PacketID: 1},
		&packet.Pubcomp{PacketID: 1},
		&packet.Suback{PacketID: 1, Codes: []packet.ReasonCode{0}},
		&packet.Disconnect{Code: packet.ServerShuttingDown},
		&packet.Pingresp{},
	} {
		b, err := packet.Append(nil, p, packet.V5)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		conns := make(chan net.Conn, 1)
		c, err := New(Options{Addr: "x:1", ClientID: "c", ReconnectMin: time.Hour, OnMessage: func(Message) {},
			Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
				a, b := net.Pipe()
				conns <- b
				return a, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		go c.Connect(context.Background())
		s := <-conns
		go func() {
			// Drain whatever the client writes.
			buf := make([]byte, 4096)
			for {
				if _, err := s.Read(buf); err != nil {
					return
				}
			}
		}()
		ack, _ := packet.Append(nil, &packet.Connack{}, packet.V5)
		s.Write(ack)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		s.SetWriteDeadline(time.Now().Add(time.Second))
		s.Write(data)
		s.Close()
		c.Close()
	})
}

// FuzzRxState opens arbitrary state file contents.
func FuzzRxState(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x81, 0, 0xff})
	f.Add(make([]byte, 9000))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "rx")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openRxState(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		for id := range 16 {
			want := id/8 < len(data) && data[id/8]&(1<<(id%8)) != 0
			if s.has(uint16(id)) != want {
				t.Fatalf("has(%d) = %v, want %v", id, !want, want)
			}
		}
		s.add(3)
		s.release(3)
	})
}
