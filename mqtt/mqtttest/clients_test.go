package mqtttest

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// TestMosquittoPubDecode serves mosquitto_pub with the codec: its
// CONNECT and PUBLISH at levels 3 (MQIsdp), 4 and 5 decode to what the
// command line asked for, and it accepts our CONNACK, PUBACK and
// DISCONNECT handling.
func TestMosquittoPubDecode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mosquitto_pub")
	}
	bin := LookPath(t, "mosquitto_pub")
	tests := []struct {
		flag  string
		v     packet.Version
		extra []string
		want  *packet.Publish
		conn  packet.Connect
	}{
		{flag: "mqttv31", v: packet.V31,
			want: &packet.Publish{Topic: "t/31", Payload: []byte("m"), QoS: 1},
			conn: packet.Connect{Version: packet.V31, CleanStart: true, KeepAlive: 60, ClientID: "pub31",
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p"),
				Will: &packet.Will{Topic: "w/31", Payload: []byte("bye"), QoS: 1}}},
		{flag: "mqttv311", v: packet.V311,
			want:  &packet.Publish{Topic: "t/311", Payload: []byte("m"), QoS: 1, Retain: true},
			extra: []string{"-r"},
			conn: packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: "pub311",
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p"),
				Will: &packet.Will{Topic: "w/311", Payload: []byte("bye"), QoS: 1}}},
		{flag: "mqttv5", v: packet.V5,
			extra: []string{"-D", "publish", "user-property", "k", "v1", "-D", "publish", "user-property", "k", "v2",
				"-D", "publish", "content-type", "text/plain", "-D", "publish", "message-expiry-interval", "30",
				"-D", "publish", "response-topic", "r/t", "-D", "publish", "correlation-data", "c1",
				"-D", "connect", "session-expiry-interval", "60", "-D", "connect", "receive-maximum", "5",
				"-D", "will", "will-delay-interval", "7"},
			want: &packet.Publish{Topic: "t/5", Payload: []byte("m"), QoS: 1, Props: packet.Properties{
				ContentType: "text/plain", ResponseTopic: "r/t", CorrelationData: []byte("c1"),
				MessageExpiry: 30, HasMessageExpiry: true,
				User: []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}}},
			conn: packet.Connect{Version: packet.V5, CleanStart: true, KeepAlive: 60, ClientID: "pub5",
				UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p"),
				Props: packet.Properties{SessionExpiry: 60, HasSessionExpiry: true, ReceiveMaximum: 5},
				Will:  &packet.Will{Topic: "w/5", Payload: []byte("bye"), QoS: 1, Props: packet.Properties{WillDelay: 7}}}},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			ctx, cancel := context.WithTimeout(context.Background(), Timeout)
			defer cancel()
			args := append([]string{"-h", "127.0.0.1", "-p", port, "-V", tc.flag, "-i", tc.conn.ClientID,
				"-t", tc.want.Topic, "-m", "m", "-q", "1", "-u", "u", "-P", "p",
				"--will-topic", tc.conn.Will.Topic, "--will-payload", "bye", "--will-qos", "1"}, tc.extra...)
			cmd := exec.CommandContext(ctx, bin, args...)
			out := make(chan []byte, 1)
			go func() {
				b, _ := cmd.CombinedOutput()
				out <- b
			}()

			l.(*net.TCPListener).SetDeadline(time.Now().Add(Timeout))
			nc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(Timeout))
			r := bufio.NewReader(nc)
			p, err := packet.Read(r, 0, 1<<16)
			if err != nil {
				t.Fatalf("read CONNECT: %v", err)
			}
			if diff := cmp.Diff(&tc.conn, p, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("CONNECT (-want +got):\n%s", diff)
			}
			write := func(p packet.Packet) {
				b, err := packet.Append(nil, p, tc.v)
				if err == nil {
					_, err = nc.Write(b)
				}
				if err != nil {
					t.Fatalf("write %v: %v", p.Type(), err)
				}
			}
			write(&packet.Connack{})
			p, err = packet.Read(r, tc.v, 1<<16)
			if err != nil {
				t.Fatalf("read PUBLISH: %v", err)
			}
			pub, ok := p.(*packet.Publish)
			if !ok {
				t.Fatalf("got %v, want PUBLISH", p.Type())
			}
			tc.want.PacketID = pub.PacketID
			if diff := cmp.Diff(tc.want, pub, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("PUBLISH (-want +got):\n%s", diff)
			}
			write(&packet.Puback{PacketID: pub.PacketID})
			if p, err = packet.Read(r, tc.v, 1<<16); err != nil || p.Type() != packet.TypeDisconnect {
				t.Errorf("after PUBACK: %v, %v; want DISCONNECT", p, err)
			}
			if b := <-out; cmd.ProcessState == nil || !cmd.ProcessState.Success() {
				t.Errorf("mosquitto_pub %v: %s", cmd.ProcessState, b)
			}
		})
	}
}

// fakeTB records Skipf and Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               { f.TB.Helper() }
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

// TestLookPathMissing checks the CI rule: a missing program skips the
// test, or fails it when CI=true.
func TestLookPathMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		if p := LookPath(f, "no-such-program-edgegw"); p != "" {
			t.Errorf("LookPath = %q", p)
		}
		if f.skipped != (ci == "") || f.failed != (ci == "true") {
			t.Errorf("CI=%q: skipped %v, failed %v", ci, f.skipped, f.failed)
		}
	}
}
