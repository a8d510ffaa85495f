package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/poll"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/google/go-cmp/cmp"
)

func TestStreamFilter(t *testing.T) {
	lo, hi := 100.0, 400.0
	rules := map[string]poll.Rule{
		"fl_pressure":    {Deadband: 2, MaxSilence: time.Minute, Min: &lo, Max: &hi, Interval: time.Hour},
		"fl_temperature": {Deadband: 1},
	}
	var got []string
	emit := streamFilter(context.Background(), "tyres", rules, func(rs []drivers.Reading) {
		for _, r := range rs {
			got = append(got, r.Point+" "+string(r.Quality)+" "+r.Time.Sub(t0).String())
		}
	})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	p := func(v float64, s int) drivers.Reading {
		return drivers.Reading{Device: "tyres", Point: "fl_pressure", Value: v, Unit: "kPa", Time: at(s), Quality: drivers.Good}
	}
	emit([]drivers.Reading{p(230, 0), {Device: "tyres", Point: "fl_battery_ok", Value: true, Time: at(0)}})
	emit([]drivers.Reading{p(231, 5), {Device: "tyres", Point: "fl_battery_ok", Value: true, Time: at(5)}}) // within deadband; no rule: reported
	emit([]drivers.Reading{p(233, 10)})                                                                     // moved 3 > 2
	emit([]drivers.Reading{p(233.5, 80)})                                                                   // silent for over a minute
	emit([]drivers.Reading{p(50, 85)})                                                                      // implausible
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_low_pressure", Value: true, Time: at(85), Alarm: true}})
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_low_pressure", Value: true, Time: at(86), Alarm: true}}) // alarms always pass
	emit([]drivers.Reading{p(233.5, 90), {Device: "tyres", Point: "fl_temperature", Value: 20.0, Time: at(90)}})
	emit([]drivers.Reading{{Device: "tyres", Point: "fl_temperature", Value: 20.5, Time: at(95)}})
	want := []string{
		"fl_pressure good 0s", "fl_battery_ok good 0s",
		"fl_battery_ok good 5s",
		"fl_pressure good 10s",
		"fl_pressure good 1m20s",
		"fl_pressure out_of_range 1m25s",
		"fl_low_pressure good 1m25s",
		"fl_low_pressure good 1m26s",
		"fl_pressure good 1m30s", "fl_temperature good 1m30s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rulingStreamer is a Streamer with rules, emitting a fixed script.
type rulingStreamer struct {
	rules  map[string]poll.Rule
	script [][]drivers.Reading
}

func (s *rulingStreamer) Name() string                { return "tyres" }
func (s *rulingStreamer) Close() error                { return nil }
func (s *rulingStreamer) Rules() map[string]poll.Rule { return s.rules }
func (s *rulingStreamer) Stream(ctx context.Context, emit func([]drivers.Reading)) error {
	for _, rs := range s.script {
		emit(rs)
	}
	return nil
}

func TestStreamEmitAppliesRules(t *testing.T) {
	script := [][]drivers.Reading{
		{{Device: "tyres", Point: "fl_pressure", Value: 230.0, Time: t0}},
		{{Device: "tyres", Point: "fl_pressure", Value: 231.0, Time: t0.Add(time.Second)}},
		{{Device: "tyres", Point: "fl_pressure", Value: 240.0, Time: t0.Add(2 * time.Second)}},
	}
	for _, tt := range []struct {
		name  string
		rules map[string]poll.Rule
		want  []float64
	}{
		{"no rules: everything", nil, []float64{230, 231, 240}},
		{"deadband", map[string]poll.Rule{"fl_pressure": {Deadband: 5}}, []float64{230, 240}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &rulingStreamer{rules: tt.rules, script: script}
			var got []float64
			s.Stream(context.Background(), streamEmit(context.Background(), s, func(rs []drivers.Reading) {
				for _, r := range rs {
					got = append(got, r.Value.(float64))
				}
			}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("emitted (-want +got):\n%s", diff)
			}
		})
	}
}

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
