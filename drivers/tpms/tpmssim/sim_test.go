package tpmssim

import (
	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/tpms"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestLines: every line the simulator prints decodes to the model's values
// with tpms.DecodeRTL433.
func TestLines(t *testing.T) {
	now := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	for _, pos := range positions {
		kpa, temp := 231.7, temperature(pos)
		m, err := tpms.DecodeRTL433([]byte(rtlLine(pos, kpa, temp, now)))
		if err != nil {
			t.Fatalf("%s: %v", pos, err)
		}
		id, _ := tpms.ParseID(IDs[pos])
		if m.ID != id || math.Abs(m.PressureKPa-kpa) > 0.01 || math.Abs(m.TemperatureC-temp) > 0.06 || !m.HasTemp {
			t.Errorf("%s: decoded %+v, want id %x, %v kPa, %v °C", pos, m, id, kpa, temp)
		}
	}
	if _, err := tpms.DecodeRTL433([]byte(weatherLine(now))); err == nil {
		t.Error("weather line decoded as TPMS")
	}
	m, err := tpms.DecodeRTL433([]byte(neighbourLine(now)))
	if err != nil || tpms.FormatID(m.ID) != NeighbourID {
		t.Errorf("neighbour line = %+v, %v", m, err)
	}
}

// TestLeakDefaults: with the default settings the leaking wheel starts
// above the low-pressure alarm's clear level and falls below its raise
// level within about a minute.
func TestLeakDefaults(t *testing.T) {
	c := &clock{time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)}
	o := Opts{Kind: KindRTL433, Now: c.now}
	o.setDefaults()
	s := &Sim{o: o, start: c.t, override: map[string]float64{}}
	if p := s.pressureLocked("rr", c.t); p < tpms.DefaultLowPressureKPa+tpms.DefaultHysteresisKPa {
		t.Errorf("leaking wheel starts at %v kPa, in alarm already", p)
	}
	var cross time.Duration
	for d := time.Duration(0); d <= 2*time.Minute; d += o.Period {
		if s.pressureLocked("rr", c.t.Add(d)) < tpms.DefaultLowPressureKPa {
			cross = d
			break
		}
	}
	if cross == 0 || cross > time.Minute {
		t.Errorf("leaking wheel below %v kPa after %v, want within about a minute", tpms.DefaultLowPressureKPa, cross)
	}
	if rate := o.LeakKPaPerMin; rate >= tpms.DefaultFastLeakKPaPerMin {
		t.Errorf("the slow leak (%v kPa/min) would raise the fast-leak alarm", rate)
	}
	if p := s.pressureLocked("fl", c.t.Add(time.Hour)); p != DefaultPressureKPa {
		t.Errorf("fl after an hour = %v kPa, want %v", p, DefaultPressureKPa)
	}
}

func TestModuleFrame(t *testing.T) {
	c := &clock{time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)}
	o := Opts{Kind: KindModule, Now: c.now}
	o.setDefaults()
	s := &Sim{o: o, start: c.t, override: map[string]float64{"fr": 1500}, silentAt: map[string]time.Time{}}
	c.t = c.t.Add(12 * time.Second)
	s.silentAt["rl"] = c.t.Add(-10 * time.Second)
	ws, err := tpms.DecodeFrame(s.frameLocked(c.t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 4 {
		t.Fatalf("%d wheels, want 4", len(ws))
	}
	if ws[0].Age != 2 || ws[0].Pressure != 2300 || ws[0].ID != 0x1a2b3c01 {
		t.Errorf("fl = %+v, want age 2, 230.0 kPa", ws[0])
	}
	if ws[1].Status&tpms.SensorFault == 0 {
		t.Errorf("fr at 1500 kPa = %+v, want the fault bit", ws[1])
	}
	if ws[2].Age != 12 {
		t.Errorf("rl silent for 10s = %+v, want age 12 (last heard at start)", ws[2])
	}
}

func TestValidate(t *testing.T) {
	err := Opts{Kind: "x", Period: -1, Repeats: 11, LeakWheel: "middle", PressureKPa: -1}.Validate()
	for _, want := range []string{`kind: "x"`, "period: -1ns", "repeats: 11", `leak_wheel: "middle"`, "pressure_kpa: -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := Start(context.Background(), Opts{}); err == nil {
		t.Error("Start without a kind succeeded")
	}
}

// TestStartPTY: the simulator's output arrives on the linked slave side.
func TestStartPTY(t *testing.T) {
	link := filepath.Join(t.TempDir(), "var", "demo", "tpms") // parents made by Start
	s, err := Start(context.Background(), Opts{Kind: KindRTL433, Link: link, Manual: true, Repeats: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := os.OpenFile(link, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s.Transmit()
	sc := bufio.NewScanner(f)
	var lines []string
	for len(lines) < 11 && sc.Scan() { // 4 wheels and the neighbour twice, one weather line
		lines = append(lines, sc.Text())
	}
	if len(lines) != 11 || lines[0] != lines[1] {
		t.Fatalf("read %d lines, want 11 with repeats: %q", len(lines), lines)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link left behind after Close: %v", err)
	}
}
