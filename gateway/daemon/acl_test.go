package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/mqtt/broker"
	"github.com/edgegw/edgegw/mqtt/client"
	"github.com/edgegw/edgegw/mqtt/packet"
)

// shippedBroker runs the broker of a shipped configuration on a loopback
// port, with its ACL and anonymous rule as shipped. A configuration with a
// password file gets one with ops and alice, password "pw" (at bcrypt's
// lowest cost: the race detector makes the shipped cost take seconds).
func shippedBroker(t *testing.T, file string) (addr string, cfg *config.Config) {
	t.Helper()
	t.Setenv("VIN", "ACLTEST")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	o := brokerOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.StateDir, o.SysInterval = "", 0
	if o.PasswordFile != "" {
		o.PasswordFile = cheapPasswords(t, "ops", "alice")
	}
	srv, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return l.Addr().String(), cfg
}

// login connects as user ("" anonymous) at MQTT 5.0, or returns the error.
func login(t *testing.T, addr, user, password string) (*client.Client, error) {
	return loginWithin(t, addr, user, password, 20*time.Second)
}

// refused reports whether a login fails (within a second: the refusal
// comes at once).
func refused(t *testing.T, addr, user, password string) bool {
	_, err := loginWithin(t, addr, user, password, time.Second)
	return err != nil
}

func loginWithin(t *testing.T, addr, user, password string, d time.Duration) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	o := client.Options{Addr: addr, ClientID: "acl-" + user, Version: packet.V5, CleanStart: true, ReconnectMin: time.Hour, ReconnectMax: time.Hour}
	if user != "" {
		o.Username, o.Password = user, []byte(password)
	}
	c, err := client.Dial(ctx, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// mayPublish reports whether c's QoS 1 publish to topic is accepted.
func mayPublish(t *testing.T, c *client.Client, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Publish(ctx, client.Message{Topic: topic, Payload: []byte(`{"v":false}`), QoS: 1, Retain: true})
	var re *client.RefusedError
	switch {
	case err == nil:
		return true
	case errors.As(err, &re) && re.Code == packet.NotAuthorized:
		return false
	}
	t.Fatalf("publish %s: %v", topic, err)
	return false
}

func maySubscribe(t *testing.T, c *client.Client, filter string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	codes, err := c.Subscribe(ctx, client.Subscription{Filter: filter, QoS: 1})
	if len(codes) != 1 {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	return !codes[0].IsError()
}

// TestShippedACL: every shipped configuration reserves the gateway's own
// topics (telemetry, alarm, status, command results) to the gateway and
// the command topics to the ops role; an ordinary account or an anonymous
// client may read telemetry and publish nothing of the gateway's, with the
// real broker and a real client (rows 11 and 12 of issue 13).
func TestShippedACL(t *testing.T) {
	const p = "vehicles/ACLTEST/"
	own := []string{
		p + "telemetry/tpms", p + "alarm/tpms/rr_low_pressure", p + "devices/tpms/status",
		p + "cmd/seat_driver/heater/result", p + "cmd/seat_driver/heater",
	}
	for _, tt := range []struct {
		file     string
		readers  map[string]string // user → password; "" anonymous
		ops      string            // ops's password; "" when ops has no rights
		noAnon   bool              // anonymous clients are refused
		fakeName string            // a name anyone may claim (no password file)
	}{
		{file: "demo.toml", readers: map[string]string{"": "", "alice": "pw"}, ops: "pw"},
		{file: "pi.toml", readers: map[string]string{"alice": "pw"}, ops: "pw", noAnon: true},
		{file: "edgegw.toml", readers: map[string]string{"": ""}, fakeName: "ops"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			addr, cfg := shippedBroker(t, "../../configs/"+tt.file)
			if len(cfg.Broker.ACL) == 0 {
				t.Fatal("no ACL")
			}
			if tt.fakeName != "" {
				tt.readers[tt.fakeName] = "anything"
			}
			for user, pw := range tt.readers {
				c, err := login(t, addr, user, pw)
				if err != nil {
					t.Fatalf("%q: login: %v", user, err)
				}
				if !maySubscribe(t, c, p+"telemetry/#") {
					t.Errorf("%q may not read telemetry", user)
				}
				for _, topic := range own {
					if mayPublish(t, c, topic) {
						t.Errorf("%q may publish on %s", user, topic)
					}
				}
			}
			if tt.noAnon {
				if !refused(t, addr, "", "") {
					t.Error("anonymous login accepted")
				}
			}
			if tt.ops == "" {
				return
			}
			if !refused(t, addr, "ops", "wrong") {
				t.Error("ops with a wrong password accepted")
			}
			c, err := login(t, addr, "ops", tt.ops)
			if err != nil {
				t.Fatalf("ops: %v", err)
			}
			if !mayPublish(t, c, p+"cmd/seat_driver/heater") {
				t.Error("ops may not send a command")
			}
			for _, topic := range own[:4] {
				if mayPublish(t, c, topic) {
					t.Errorf("ops may publish on the gateway's %s", topic)
				}
			}
		})
	}
}

// cheapPasswords writes a password file giving each user the password
// "pw", and returns its path.
func cheapPasswords(t *testing.T, users ...string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDemoPassword: the demo's password file holds ops with the password
// its comment gives.
func TestDemoPassword(t *testing.T) {
	b, err := os.ReadFile("../../configs/demo.passwd")
	if err != nil {
		t.Fatal(err)
	}
	user, hash, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	if user != "ops" || !broker.VerifyPassword(hash, []byte("demo")) {
		t.Errorf("configs/demo.passwd: %q is not ops with password demo", b)
	}
}
