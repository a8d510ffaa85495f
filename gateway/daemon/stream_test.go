package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

// TestCheckTPMSPointRules: rule keys under a TPMS device's points decode
// from TOML (durations included) and bad ones are reported at -check.
func TestCheckTPMSPointRules(t *testing.T) {
	conf := func(points string) string {
		return `[gateway]
id = "V1"
state_dir = "` + t.TempDir() + `"
[broker]
listen = ""
[[bus]]
name = "tpms_rx"
type = "serial"
device = "/dev/serial/by-id/missing-tpms"
[[device]]
name = "tyres"
kind = "tpms_rtl433"
bus = "tpms_rx"
[device.options]
wheels = { "1a2b3c01" = "fl", "1a2b3c02" = "spare" }
` + points
	}
	tests := []struct {
		name, points, want string
	}{
		{"kind and wheel", `[device.options.points.pressure]
deadband = 2.0
max_silence = "5m"
min = 100.0
max = 400.0
[device.options.points.spare_pressure]
max_silence = "1h"
`, ""},
		{"unknown point", `[device.options.points.humidity]
deadband = 1.0
`, "points.humidity: not a point kind"},
		{"interval on a stream", `[device.options.points.temperature]
interval = "1m"
`, "points.temperature.interval: tpms_rtl433 is not polled"},
		{"unknown key", `[device.options.points.pressure]
dead_band = 1.0
`, "dead_band"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(conf(tt.points)), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path)
			if err == nil {
				err = Check(c, testRegistry())
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
