package config

import (
	"strings"
	"testing"
	"time"
)

func TestBrokerLimits(t *testing.T) {
	tests := []struct {
		name  string
		toml  string
		check func(*Config) bool
		errs  []string
	}{
		{"defaults", "", func(c *Config) bool {
			b := c.Broker
			return b.MaxPendingConnections == 64 && b.ConnectTimeout.D() == 5*time.Second &&
				b.MaxSessionBytes == 1<<20 && b.MaxQueuedBytes == 32<<20 && b.MaxRetainedBytes == 8<<20 &&
				b.MaxRetainedMessageBytes == 64<<10 && b.MaxSessions == 256
		}, nil},
		{"set", "max_pending_connections = 8\nconnect_timeout = \"2s\"\nmax_session_bytes = \"256KiB\"\nmax_queued_bytes = \"4MiB\"\nmax_retained_bytes = \"1MiB\"\nmax_retained_message_bytes = \"16KiB\"\nmax_sessions = 10\n",
			func(c *Config) bool {
				b := c.Broker
				return b.MaxPendingConnections == 8 && b.ConnectTimeout.D() == 2*time.Second && b.MaxSessionBytes == 256<<10 &&
					b.MaxQueuedBytes == 4<<20 && b.MaxRetainedBytes == 1<<20 && b.MaxRetainedMessageBytes == 16<<10 && b.MaxSessions == 10
			}, nil},
		{"negative", "max_pending_connections = -1\nmax_sessions = -1\nconnect_timeout = \"-1s\"\n", nil, []string{
			"broker.max_pending_connections: must be at least 1",
			"broker.max_sessions: must be at least 1",
			"broker.connect_timeout: must be positive",
		}},
		{"inconsistent", "max_session_bytes = \"64MiB\"\nmax_retained_message_bytes = \"16MiB\"\nmax_retained_bytes = \"512B\"\n", nil, []string{
			"broker.max_session_bytes: 67108864 above max_queued_bytes 33554432",
			"broker.max_retained_bytes: 512 below 1024",
			"broker.max_retained_message_bytes: 16777216 above max_retained_bytes 512",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("x.toml", []byte("[gateway]\nid = \"a\"\n[broker]\n"+tt.toml), testEnv)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if tt.errs == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				if !tt.check(c) {
					t.Errorf("broker = %+v", c.Broker)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %v\nwant %q", err, want)
				}
			}
		})
	}
}
