package topic

import (
	"errors"
	"testing"
)

func TestNoControl(t *testing.T) {
	tests := []struct {
		name string
		s    string
		bad  bool
	}{
		{"plain", "vehicles/1/cmd", false},
		{"dollar", "$aws/things/x/shadow/update", false},
		{"non-ascii", "fahrzeug/über", false},
		{"U+00A0", "a\u00a0b", false},
		{"U+0001", "a\x01b", true},
		{"tab", "a\tb", true},
		{"U+001F", "a\x1fb", true},
		{"DEL", "a\x7fb", true},
		{"U+0080", "a\u0080b", true},
		{"U+009F", "a\u009fb", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NoControl(tt.s)
			if (err != nil) != tt.bad || (err != nil && !errors.Is(err, ErrControl)) {
				t.Errorf("NoControl(%q) = %v, want bad %v", tt.s, err, tt.bad)
			}
		})
	}
}
