package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCheckProfileWarnings: -check prints a profile's warnings and still
// passes the file, which is valid.
func TestCheckProfileWarnings(t *testing.T) {
	f := "../../configs/testdata/profile/aws_443.toml"
	var out, errb bytes.Buffer
	if code := run([]string{"-config", f, "-check"}, nil, &out, &errb); code != 0 {
		t.Fatalf("edgegw -config %s -check = %d:\n%s", f, code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"warning: " + f + `:6: uplink.alpn: AWS IoT Core serves MQTT on port 443 only to clients that offer ALPN "x-amzn-mqtt-ca"`,
		"warning: " + f + ":6: uplink.cert_file: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stdout lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(out.String(), ": ok\n") {
		t.Errorf("stdout %q, want ...: ok", out.String())
	}
}
