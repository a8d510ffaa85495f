package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden .err and .warn files")

// testEnv is the environment the golden files see.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{"VIN": "WVW123", "BAD_VALUE": `a"b`}[name]
	return v, ok
}

// testOpts stands for a driver's options in the golden tests.
type testOpts struct {
	Unit   int `toml:"unit"`
	Points []struct {
		Name  string  `toml:"name"`
		Scale float64 `toml:"scale"`
	} `toml:"points"`
}

func (o testOpts) validate() error {
	var errs []error
	for i, p := range o.Points {
		if p.Scale == 0 {
			errs = append(errs, fmt.Errorf("points[%d].scale: must not be 0", i))
		}
	}
	return errors.Join(errs...)
}

// check is what edgegw -check does with the test driver kind.
func check(name string, data []byte) error {
	c, err := Parse(name, data, testEnv)
	if err != nil {
		return err
	}
	errs := []error{c.Validate()}
	for i, d := range c.Devices {
		var o testOpts
		// A driver stops at a decode error; the test goes on to show
		// both kinds of problem together.
		err := errors.Join(d.Decode(&o), o.validate())
		for _, p := range c.DeviceProblems(i, err) {
			errs = append(errs, p)
		}
	}
	return errors.Join(errs...)
}

func TestGoldenInvalid(t *testing.T) {
	testGolden(t, "invalid", ".err", func(t *testing.T, name string, data []byte) string {
		err := check(name, data)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		return err.Error() + "\n"
	})
}

// testGolden runs got on each configs/testdata/{dir}/*.toml and compares
// what it returns with the file's golden twin ending in ext (go test
// -update rewrites them).
func testGolden(t *testing.T, dir, ext string, got func(t *testing.T, name string, data []byte) string) {
	files, _ := filepath.Glob("../../configs/testdata/" + dir + "/*.toml")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := "configs/testdata/" + dir + "/" + filepath.Base(f)
			out := got(t, name, data)
			golden := strings.TrimSuffix(f, ".toml") + ext
			if *update {
				os.WriteFile(golden, []byte(out), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		})
	}
}

const minimal = `
[gateway]
id = "${VIN}"
state_dir = "${STATE_DIRECTORY:-/tmp/edgegw}"

[[bus]]
name = "rs485"
type = "modbus_rtu"
device = "/dev/ttyUSB0"

[[device]]
name = "cabin"
kind = "test"
bus = "rs485"
interval = "2s"
[device.options]
unit = 7
points = [
  { name = "t", scale = 0.1 },
]
[[device.command]]
name = "heater"
type = "bool"
auto_off = "30m"
require = ["cabin.occupied"]
`

func TestDefaults(t *testing.T) {
	c, err := Parse("x.toml", []byte(minimal), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"prefix", c.Gateway.Prefix(), "vehicles/WVW123"},
		{"state_dir", c.Gateway.StateDir, "/tmp/edgegw"},
		{"queue dir", c.Queue.Dir, "/tmp/edgegw/queue"},
		{"broker listen", c.Broker.Listen, "127.0.0.1:1883"},
		{"max_retained", c.Broker.MaxRetained, 10000},
		{"max_subscriptions", c.Broker.MaxSubscriptions, 1000},
		{"fsync", c.Queue.Fsync, "interval"},
		{"client id", c.Uplink.ClientID, "WVW123"},
		{"remote prefix", c.Uplink.TopicPrefix, "vehicles/WVW123"},
		{"baud", c.Buses[0].Baud, 9600},
		{"gap", c.Buses[0].Gap.D(), 5 * time.Millisecond},
		{"interval", c.Devices[0].Interval.D(), 2 * time.Second},
		{"auto_off", c.Devices[0].Commands[0].AutoOff.D(), 30 * time.Minute},
		{"cmd timeout", c.Devices[0].Commands[0].Timeout.D(), 5 * time.Second},
	}
	for _, ch := range checks {
		if !cmp.Equal(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	var o testOpts
	if err := c.Devices[0].Decode(&o); err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if o.Unit != 7 || len(o.Points) != 1 || o.Points[0].Scale != 0.1 {
		t.Errorf("Decode = %+v", o)
	}
}

func TestBrokerListenDisabled(t *testing.T) {
	c, err := Parse("x.toml", []byte("[gateway]\nid = \"a\"\n[broker]\nlisten = \"\"\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.Listen != "" {
		t.Errorf("listen = %q, want empty (disabled)", c.Broker.Listen)
	}
}

func TestExpandEnv(t *testing.T) {
	tests := []struct {
		in, want string
		errs     int
	}{
		{`a = "${VIN}"`, `a = "WVW123"`, 0},
		{`a = "${NOPE:-d}"`, `a = "d"`, 0},
		{`a = "${NOPE:-}"`, `a = ""`, 0},
		{`a = "$${VIN}"`, `a = "${VIN}"`, 0},
		{`a = "x" # ${NOPE}`, `a = "x" # ${NOPE}`, 0},
		{`a = "#${VIN}"`, `a = "#WVW123"`, 0},
		{`a = "${NOPE}"`, `a = "${NOPE}"`, 1},
		{`a = "${BAD_VALUE}"`, `a = "${BAD_VALUE}"`, 1},
		{`a = "${1X}"`, `a = "${1X}"`, 1},
	}
	for _, tt := range tests {
		got, probs := expandEnv([]byte(tt.in), testEnv)
		if got != tt.want || len(probs) != tt.errs {
			t.Errorf("expandEnv(%q) = %q, %d problems, want %q, %d", tt.in, got, len(probs), tt.want, tt.errs)
		}
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"1024", 1024, true}, {"64MiB", 64 << 20, true}, {"1 GiB", 1 << 30, true}, {"2KB", 2000, true},
		{"-1", 0, false}, {"lots", 0, false}, {"9999999999GiB", 0, false},
	}
	for _, tt := range tests {
		var s Size
		err := s.UnmarshalText([]byte(tt.in))
		if (err == nil) != tt.ok || err == nil && s != tt.want {
			t.Errorf("Size(%q) = %d, %v, want %d, ok %v", tt.in, s, err, tt.want, tt.ok)
		}
	}
}

func TestValidateInCode(t *testing.T) {
	c := &Config{Gateway: Gateway{ID: "a"}, Devices: []Device{{Name: "Bad", Kind: "x"}}}
	c.SetDefaults()
	err := c.Validate()
	want := `device "Bad": name: "Bad" must be lower_snake_case (a-z, 0-9, _), at most 64 bytes`
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
}

// FuzzLoad checks that no input makes Parse, Validate or an options
// Decode panic.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../../configs/testdata/invalid/*.toml")
	more, _ := filepath.Glob("../../configs/*.toml")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = check("fuzz.toml", b)
	})
}

func TestUplinkBatch(t *testing.T) {
	base := "[gateway]\nid = \"a\"\n[uplink]\nurl = \"mqtt://cloud:1883\"\n"
	c, err := Parse("x.toml", []byte(base), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Uplink.Batch != nil {
		t.Errorf("without [uplink.batch]: Batch = %+v, want nil (off)", c.Uplink.Batch)
	}
	c, err = Parse("x.toml", []byte(base+"[uplink.batch]\nmax_records = 100\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &Batch{MaxRecords: 100, MaxBytes: 256 << 10, MaxDelay: Duration(5 * time.Second), Compression: "deflate"}
	if diff := cmp.Diff(want, c.Uplink.Batch); diff != "" {
		t.Errorf("[uplink.batch] defaults (-want +got):\n%s", diff)
	}
}
