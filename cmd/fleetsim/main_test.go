package main

import (
	"bytes"
	"testing"
)

func TestBadArgs(t *testing.T) {
	for _, args := range [][]string{{"-n", "x"}, {"extra"}, {"-nope"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("fleetsim %q = %d, want 2 (%s)", args, code, errb.String())
		}
	}
}
