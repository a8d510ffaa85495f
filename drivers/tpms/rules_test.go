package tpms

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgegw/edgegw/drivers/poll"
)

func TestRules(t *testing.T) {
	lo := 150.0
	tests := []struct {
		name   string
		points map[string]poll.Rule
		want   map[string]poll.Rule
	}{
		{"none", nil, nil},
		{"per kind, every wheel",
			map[string]poll.Rule{"pressure": {Deadband: 2, MaxSilence: 5 * time.Minute}, "battery_ok": {MaxSilence: time.Hour}},
			map[string]poll.Rule{
				"fl_pressure": {Deadband: 2, MaxSilence: 5 * time.Minute}, "rr_pressure": {Deadband: 2, MaxSilence: 5 * time.Minute},
				"fl_battery_ok": {MaxSilence: time.Hour}, "rr_battery_ok": {MaxSilence: time.Hour},
			}},
		{"one wheel's rule replaces the kind's",
			map[string]poll.Rule{"pressure": {Deadband: 2}, "rr_pressure": {Min: &lo}, "fl_temperature": {Deadband: 1}},
			map[string]poll.Rule{"fl_pressure": {Deadband: 2}, "rr_pressure": {Min: &lo}, "fl_temperature": {Deadband: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOpts()
			o.Points = tt.points
			d, err := newRTL433(&fakeLines{}, "tpms", o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, d.Rules()); diff != "" {
				t.Errorf("RTL433 Rules() (-want +got):\n%s", diff)
			}
			m, err := newModule(nil, "tpms", o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, m.Rules()); diff != "" {
				t.Errorf("Module Rules() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPointsValidate(t *testing.T) {
	lo, hi := 300.0, 100.0
	o := testOpts()
	o.Points = map[string]poll.Rule{
		"pressure":        {Deadband: -1},
		"rr_temperature":  {Min: &lo, Max: &hi},
		"spare_pressure":  {},
		"fl_low_pressure": {},
		"humidity":        {},
		"fl_battery_ok":   {Interval: time.Minute},
	}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{
		"points.pressure.deadband: -1 must not be negative",
		"points.rr_temperature.min: 300 above max 100",
		"points.spare_pressure: not a point kind",
		"points.fl_low_pressure: not a point kind",
		"points.humidity: not a point kind",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "fl_battery_ok") {
		t.Errorf("Validate() = %v: fl_battery_ok is a valid point", err)
	}

	// An interval suits the polled module, not the streaming receiver.
	o = testOpts()
	o.Points = map[string]poll.Rule{"pressure": {Interval: time.Minute}}
	if _, err := newModule(nil, "tpms", o, nil); err != nil {
		t.Errorf("module with a point interval: %v", err)
	}
	_, err = newRTL433(&fakeLines{}, "tpms", o, nil)
	if err == nil || !strings.Contains(err.Error(), "points.pressure.interval: tpms_rtl433 is not polled") {
		t.Errorf("rtl433 with a point interval: %v", err)
	}
}
