package tpms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Message is one transmission of a tyre sensor, whatever the receiver.
type Message struct {
	ID           uint64
	Model        string
	PressureKPa  float64
	TemperatureC float64
	HasTemp      bool
	BatteryOK    bool
	HasBattery   bool
	// Fault marks a transmission the receiver flagged as faulty.
	Fault bool
	// Time is the receiver's time stamp, if it gave a usable one.
	Time time.Time
}

// Unit conversions.
const (
	kPaPerPSI = 6.894757293168361
	kPaPerBar = 100
	// BatteryOKmV is the battery_mV from which a battery counts as ok.
	BatteryOKmV = 2500
)

// rtlLine holds the rtl_433 fields this package uses. Pointers tell absent
// fields from zero ones.
type rtlLine struct {
	Model        string          `json:"model"`
	Type         string          `json:"type"`
	ID           json.RawMessage `json:"id"`
	PressureKPa  *float64        `json:"pressure_kPa"`
	PressurePSI  *float64        `json:"pressure_PSI"`
	PressureBar  *float64        `json:"pressure_bar"`
	TemperatureC *float64        `json:"temperature_C"`
	TemperatureF *float64        `json:"temperature_F"`
	BatteryOK    json.RawMessage `json:"battery_ok"`
	BatteryMV    *float64        `json:"battery_mV"`
	Time         json.RawMessage `json:"time"`
}

// DecodeRTL433 decodes one line of rtl_433's JSON output. It returns
// ErrNotTPMS for a well-formed line of another device type and an error
// wrapping ErrMalformed for anything else it cannot use.
func DecodeRTL433(line []byte) (Message, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Message{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var l rtlLine
	if err := json.Unmarshal(line, &l); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if l.Type != "TPMS" {
		return Message{}, fmt.Errorf("%w: type %q", ErrNotTPMS, l.Type)
	}
	m := Message{Model: l.Model}
	id, err := decodeID(l.ID)
	if err != nil {
		return Message{}, err
	}
	m.ID = id
	switch {
	case l.PressureKPa != nil:
		m.PressureKPa = *l.PressureKPa
	case l.PressurePSI != nil:
		m.PressureKPa = *l.PressurePSI * kPaPerPSI
	case l.PressureBar != nil:
		m.PressureKPa = *l.PressureBar * kPaPerBar
	default:
		return Message{}, fmt.Errorf("%w: no pressure", ErrMalformed)
	}
	switch {
	case l.TemperatureC != nil:
		m.TemperatureC, m.HasTemp = *l.TemperatureC, true
	case l.TemperatureF != nil:
		m.TemperatureC, m.HasTemp = (*l.TemperatureF-32)*5/9, true
	}
	if len(l.BatteryOK) > 0 && string(l.BatteryOK) != "null" {
		switch s := string(l.BatteryOK); s {
		case "true":
			m.BatteryOK = true
		case "false":
		default:
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return Message{}, fmt.Errorf("%w: battery_ok %s", ErrMalformed, s)
			}
			m.BatteryOK = v >= 0.5 // rtl_433 uses 0 and 1, some models a fraction
		}
		m.HasBattery = true
	} else if l.BatteryMV != nil {
		m.BatteryOK, m.HasBattery = *l.BatteryMV >= BatteryOKmV, true
	}
	if math.IsNaN(m.PressureKPa) || math.IsInf(m.PressureKPa, 0) || math.IsNaN(m.TemperatureC) || math.IsInf(m.TemperatureC, 0) {
		return Message{}, fmt.Errorf("%w: value not finite", ErrMalformed)
	}
	m.Time = decodeTime(l.Time)
	return m, nil
}

// decodeID takes a hex string (optional 0x) or a non-negative integer.
func decodeID(raw json.RawMessage) (uint64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, fmt.Errorf("%w: no id", ErrMalformed)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%w: id %s", ErrMalformed, raw)
		}
		id, err := ParseID(s)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return id, nil
	}
	id, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: id %s not a hex string or an unsigned integer", ErrMalformed, raw)
	}
	return id, nil
}

// ParseID parses a sensor id written in hex, with or without "0x", in
// either case: "1a2b3c4d", "0x1A2B3C4D". An id that rtl_433 prints as an
// integer is written in hex here too (4660 is "0x1234").
func ParseID(s string) (uint64, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, ok := parseHex([]byte(h))
	if !ok {
		return 0, fmt.Errorf("tpms: sensor id %q: want 1 to 16 hex digits", s)
	}
	return v, nil
}

// FormatID writes id as rtl_433 writes most ids: 8 or more lower-case hex
// digits.
func FormatID(id uint64) string { return fmt.Sprintf("%08x", id) }

// decodeTime returns the time of a "time" field that carries a zone
// (RFC 3339) or is a Unix time in seconds; zero otherwise.
func decodeTime(raw json.RawMessage) time.Time {
	if len(raw) == 0 {
		return time.Time{}
	}
	var s string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}
		}
	} else {
		s = string(raw)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && f < 1<<40 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	return time.Time{}
}
