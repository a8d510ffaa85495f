package client

import "testing"

func TestWindowBusy(t *testing.T) {
	tests := []struct {
		name            string
		inflight, limit int
		want            bool
	}{
		{"empty", 0, 20, false},
		{"one", 1, 20, false},
		{"under half", 9, 20, false},
		{"half", 10, 20, true},
		{"full", 20, 20, true},
		{"window of one", 1, 1, false},
		{"window of two, full", 2, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{inflight: tt.inflight, limit: tt.limit}
			if got := c.windowBusy(); got != tt.want {
				t.Errorf("windowBusy() with %d of %d in flight = %v, want %v", tt.inflight, tt.limit, got, tt.want)
			}
		})
	}
}
