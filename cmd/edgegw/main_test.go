package main

import (
	"bytes"
	"compress/zlib"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/mqtt/broker"
)

func TestCheckShippedConfigs(t *testing.T) {
	t.Setenv("VIN", "WVWZZZ1JZ3W386752")
	files, _ := filepath.Glob("../../configs/*.toml")
	if len(files) < 3 {
		t.Fatalf("configs: %v", files)
	}
	for _, f := range files {
		var out, errb bytes.Buffer
		if code := run([]string{"-config", f, "-check"}, nil, &out, &errb); code != 0 {
			t.Errorf("edgegw -config %s -check = %d:\n%s", f, code, errb.String())
		}
	}
}

func TestCheckInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(`[gateway]
id = "car"

[[bus]]
name = "line"
type = "modbus_rtu"
device = "/dev/ttyUSB0"

[[device]]
name = "cabin"
kind = "modbus"
bus = "line"
[device.options]
slave = 1
colour = "red"
[[device.options.points]]
name = "t"
table = "input_register"
address = 1
type = "int16"
scale = 0.0

[[device]]
name = "boot"
kind = "trunk_lid"
`), 0o644)
	var out, errb bytes.Buffer
	code := run([]string{"-config", path, "-check"}, nil, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	got := errb.String()
	for _, want := range []string{
		path + `:15: device "cabin": colour: unknown key`,
		path + `:25: device "boot": kind: unknown driver kind "trunk_lid"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-version"}, nil, &out, &out); code != 0 || !strings.Contains(out.String(), "tpms_rtl433") {
		t.Errorf("-version = %d %q", code, out.String())
	}
	if code := run(nil, nil, &out, &out); code != 2 {
		t.Errorf("no -config: exit %d, want 2", code)
	}
}

func TestPasswd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	var out bytes.Buffer
	if code := run([]string{"-passwd", path, "-user", "dash"}, strings.NewReader("s3cret\n"), &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	b, _ := os.ReadFile(path)
	user, hash, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	if user != "dash" || !broker.VerifyPassword(hash, []byte("s3cret")) {
		t.Errorf("password file %q", b)
	}
	if code := run([]string{"-passwd", path}, strings.NewReader("x\n"), &out, &out); code != 2 {
		t.Errorf("without -user: exit %d", code)
	}
}

// TestCheckWarns: -check prints the warnings of a valid but unsafe file
// and still exits 0.
func TestCheckWarns(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-config", "../../configs/testdata/warn/open_broker.toml", "-check"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
	for _, want := range []string{"warning: ", "allow_anonymous = true", "no ACL", "broker.max_retained"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDecode(t *testing.T) {
	body := `{"v":1,"prefix":"cloud/V1","records":[{"t":"telemetry/cabin","r":true,"p":{"seq":1}},{"topic":"x/y","b":"aGk="}]}`
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(body))
	zw.Close()
	want := "cloud/V1/telemetry/cabin (retained) {\"seq\":1}\nx/y hi\n"
	for name, in := range map[string][]byte{"zlib": z.Bytes(), "json": []byte(body)} {
		var out, errs bytes.Buffer
		if code := run([]string{"-decode"}, bytes.NewReader(in), &out, &errs); code != 0 || out.String() != want {
			t.Errorf("%s: exit %d, out %q, want %q; stderr %s", name, code, out.String(), want, errs.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"-decode"}, strings.NewReader("junk"), &out, &out); code != 1 {
		t.Errorf("junk: exit %d, want 1", code)
	}
}
