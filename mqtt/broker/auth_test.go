package broker

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func ptr[T any](v T) *bool { b := any(v).(bool); return &b }

func TestAnonymousDefault(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want bool
	}{
		{"no listener", Options{}, true},
		{"loopback", Options{Listen: "127.0.0.1:1883"}, true},
		{"loopback with websocket", Options{Listen: "127.0.0.1:1883", WSListen: "[::1]:8080"}, false},
		{"localhost", Options{Listen: "localhost:1883"}, true},
		{"any address", Options{Listen: "127.0.0.1:1883", TLSListen: ":8883", TLSCert: "x", TLSKey: "y"}, false},
		{"explicit", Options{Listen: "0.0.0.0:1883", AllowAnonymous: ptr(true)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AnonymousAllowed(tt.o); got != tt.want {
				t.Errorf("anonymous = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPasswordFile(t *testing.T) {
	defer func(c int) { hashCost = c }(hashCost)
	hashCost = bcrypt.MinCost
	dir := t.TempDir()
	pf := filepath.Join(dir, "passwd")
	if err := AppendPasswordEntry(pf, "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := AppendPasswordEntry(pf, "bob", "old"); err != nil {
		t.Fatal(err)
	}
	if err := AppendPasswordEntry(pf, "bob", "new"); err != nil { // replaces
		t.Fatal(err)
	}
	// An argon2id entry written by another tool.
	salt := []byte("saltsaltsalt")
	key := argon2.IDKey([]byte("pw"), salt, 1, 64, 1, 32)
	f, _ := os.OpenFile(pf, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "carol:$argon2id$v=19$m=64,t=1,p=1$%s$%s\n",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	f.Close()
	b, _ := os.ReadFile(pf)
	if n := strings.Count(string(b), "bob:"); n != 1 {
		t.Errorf("bob has %d entries", n)
	}
	s := newServer(t, Options{PasswordFile: pf, AllowAnonymous: ptr(false)})
	tests := []struct {
		name   string
		v      packet.Version
		user   string
		pass   string
		noUser bool
		want   packet.ReasonCode
		v3code byte // 3.1.1 return code on the wire
	}{
		{"good", packet.V311, "alice", "secret", false, packet.Success, 0},
		{"replaced", packet.V5, "bob", "new", false, packet.Success, 0},
		{"argon2id", packet.V5, "carol", "pw", false, packet.Success, 0},
		{"argon2id wrong", packet.V5, "carol", "px", false, packet.BadUsernameOrPassword, 0},
		{"old password", packet.V5, "bob", "old", false, packet.BadUsernameOrPassword, 0},
		// 3.1.1 return code 4 [MQTT-3.2.2.3].
		{"wrong 3.1.1", packet.V311, "alice", "nope", false, packet.BadUsernameOrPassword, 4},
		{"unknown", packet.V311, "mallory", "x", false, packet.BadUsernameOrPassword, 4},
		// Anonymous refused: 3.1.1 return code 5.
		{"anonymous", packet.V311, "", "", true, packet.NotAuthorized, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pipe(t, s, tt.v)
			cp := &packet.Connect{ClientID: "c-" + tt.name, CleanStart: true}
			if !tt.noUser {
				cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, tt.user, true, []byte(tt.pass)
			}
			if ack := c.connack(cp); ack.Code != tt.want {
				t.Fatalf("CONNACK %v, want %v", ack.Code, tt.want)
			}
			if tt.want != packet.Success {
				c.closed()
			}
		})
	}
}

func TestACL(t *testing.T) {
	acl := []ACLRule{
		{User: "car", Permission: "allow", Action: "all", Topic: "vehicles/#"},
		{User: "root", Permission: "allow", Action: "all", Topic: "#"},
		{User: "root", Permission: "allow", Action: "subscribe", Topic: "$aws/+/+/shadow/#"},
		{User: "*", Permission: "deny", Action: "publish", Topic: "vehicles/+/cmd/#"},
		{User: "*", Permission: "allow", Action: "subscribe", Topic: "vehicles/#"},
		{User: "*", Permission: "allow", Action: "all", Topic: "users/%u/#"},
		{User: "", Permission: "allow", Action: "subscribe", Topic: "public/#"},
	}
	a, err := newAuthenticator(Options{ACL: acl})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, topic string
		act         action
		want        bool
	}{
		{"car", "vehicles/1/cmd/x", actPublish, true},
		{"app", "vehicles/1/cmd/x", actPublish, false},
		{"app", "vehicles/1/telemetry", actSubscribe, true},
		{"app", "vehicles/#", actSubscribe, true},
		{"app", "#", actSubscribe, false},
		{"app", "users/app/x", actPublish, true},
		{"app", "users/bob/x", actPublish, false},
		{"a/b", "users/a/b/x", actPublish, false}, // %u with '/' never matches
		{"", "public/x", actSubscribe, true},
		{"", "public/x", actPublish, false},
		{"", "vehicles/1", actSubscribe, false},
		{"app", "$share/g/vehicles/1/t", actSubscribe, true},
		{"root", "#", actSubscribe, true},
		{"root", "$SYS/#", actSubscribe, false}, // "#" does not cover $-topics
		{"root", "$aws/things/x", actPublish, false},
		{"root", "$aws/things/x/shadow/#", actSubscribe, true},
	}
	for _, tt := range tests {
		if got := a.allowed(tt.user, "cid", tt.topic, tt.act); got != tt.want {
			t.Errorf("allowed(%q, %q, %v) = %v, want %v", tt.user, tt.topic, tt.act, got, tt.want)
		}
	}
}

func TestACLOverTheWire(t *testing.T) {
	acl := []ACLRule{{User: "", Permission: "allow", Action: "all", Topic: "ok/#"}}
	for _, tc := range []struct {
		v    packet.Version
		code byte
		want packet.ReasonCode
	}{
		{packet.V311, 0x87, 0x80}, // 3.1.1 has one failure code [MQTT-3.9.3-2]
		{packet.V5, 0, 0x80},
		{packet.V5, 0x87, 0x87},
	} {
		s := newServer(t, Options{ACL: acl, DenySubscribeCode: tc.code})
		c := connect(t, s, tc.v, "a", true)
		sa := c.subscribe(1, sub("ok/1", 1), sub("no/1", 1))
		if sa.Codes[0] != 1 || sa.Codes[1] != tc.want {
			t.Errorf("%v code %#x: SUBACK %v, want [1 %v]", tc.v, tc.code, sa.Codes, tc.want)
		}
		// A denied publish is dropped; 5.0 is told 0x87.
		code := c.publish(&packet.Publish{Topic: "no/1", QoS: 1, PacketID: 1})
		if want := map[packet.Version]packet.ReasonCode{packet.V311: 0, packet.V5: 0x87}[tc.v]; code != want {
			t.Errorf("%v: PUBACK %v, want %v", tc.v, code, want)
		}
	}
}

func TestParseACL(t *testing.T) {
	rules, err := ParseACL(strings.NewReader(`# comment
topic read public/#
user car
topic vehicles/#
topic deny vehicles/secret
pattern write users/%u/#
`))
	if err != nil {
		t.Fatal(err)
	}
	a := &authenticator{acl: rules}
	for _, tt := range []struct {
		user, topic string
		act         action
		want        bool
	}{
		{"", "public/x", actSubscribe, true},
		{"", "public/x", actPublish, false},
		{"car", "vehicles/1", actPublish, true},
		{"car", "vehicles/secret", actSubscribe, false},
		{"bob", "users/bob/x", actPublish, true},
	} {
		if got := a.allowed(tt.user, "c", tt.topic, tt.act); got != tt.want {
			t.Errorf("allowed(%q, %q) = %v, want %v", tt.user, tt.topic, got, tt.want)
		}
	}
	if _, err := ParseACL(strings.NewReader("bogus line\n")); err == nil {
		t.Error("ParseACL accepted an unknown keyword")
	}
}
