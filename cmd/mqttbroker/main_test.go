package main

import (
	"bytes"
	"testing"
)

func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"-nope"}, 2},
		{"bad duration", []string{"-sys-interval", "-1"}, 2},
		{"bad address", []string{"-listen", "127.0.0.1:notaport", "-sys-interval", "-1s"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := run(tc.args, &out, &errOut); got != tc.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tc.args, got, tc.want, errOut.String())
			}
		})
	}
}
