package tpmssim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgegw/edgegw/drivers/tpms"
)

// emit transmits every Period until ctx is done.
func (s *Sim) emit(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.o.Period)
	defer t.Stop()
	for {
		s.Transmit()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Transmit prints one round now: every wheel that is not silent, the
// neighbour's sensor and a weather station, each TPMS line Repeats times.
// Lines written while nobody reads the line are dropped.
func (s *Sim) Transmit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	var b strings.Builder
	for _, pos := range positions {
		if _, silent := s.silentAt[pos]; silent {
			continue
		}
		l := rtlLine(pos, s.pressureLocked(pos, now), temperature(pos), now)
		for range s.o.Repeats {
			b.WriteString(l)
		}
	}
	n := neighbourLine(now)
	for range s.o.Repeats {
		b.WriteString(n)
	}
	b.WriteString(weatherLine(now))
	s.writeLocked([]byte(b.String()))
}

// rtlTime is rtl_433's default time format: local time without a zone.
func rtlTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

// rtlLine prints the wheel at pos as one of four rtl_433 decoders would
// (see rtl_433 src/devices/tpms_toyota.c, tpms_schrader.c, tpms_pmv107j.c,
// tpms_ford.c), ending in "\n".
func rtlLine(pos string, kpa, tempC float64, now time.Time) string {
	ts := rtlTime(now)
	id := IDs[pos]
	switch pos {
	case "fl": // PSI, lower-case hex id
		return fmt.Sprintf(`{"time" : "%s", "model" : "Toyota", "type" : "TPMS", "id" : "%s", "status" : 128, "pressure_PSI" : %.3f, "temperature_C" : %.3f, "mic" : "CRC"}`+"\n",
			ts, id, kpa/6.894757293168361, tempC)
	case "fr": // kPa, upper-case hex id
		return fmt.Sprintf(`{"time" : "%s", "model" : "Schrader", "type" : "TPMS", "flags" : "3a", "id" : "%s", "pressure_kPa" : %.3f, "temperature_C" : %.0f, "mic" : "CRC"}`+"\n",
			ts, strings.ToUpper(id), kpa, tempC)
	case "rl": // integer id, °F, battery_ok
		v, _ := tpms.ParseID(id)
		return fmt.Sprintf(`{"time" : "%s", "model" : "PMV-107J", "type" : "TPMS", "id" : %s, "status" : 0, "battery_ok" : 1, "counter" : 1, "failed" : "OK", "pressure_kPa" : %.3f, "temperature_F" : %.1f, "mic" : "CRC"}`+"\n",
			ts, strconv.FormatUint(v, 10), kpa, tempC*9/5+32)
	default: // 0x id, battery_mV
		return fmt.Sprintf(`{"time" : "%s", "model" : "Ford", "type" : "TPMS", "id" : "0x%s", "pressure_kPa" : %.3f, "temperature_C" : %.3f, "battery_mV" : 3000, "moving" : 0, "mic" : "CHECKSUM"}`+"\n",
			ts, id, kpa, tempC)
	}
}

func neighbourLine(now time.Time) string {
	return fmt.Sprintf(`{"time" : "%s", "model" : "Renault", "type" : "TPMS", "id" : "%s", "flags" : "00", "pressure_kPa" : 212.500, "temperature_C" : 18.000, "mic" : "CRC"}`+"\n",
		rtlTime(now), NeighbourID)
}

func weatherLine(now time.Time) string {
	return fmt.Sprintf(`{"time" : "%s", "model" : "Acurite-Tower", "id" : 1234, "channel" : "A", "battery_ok" : 1, "temperature_C" : 12.300, "humidity" : 55, "mic" : "CHECKSUM"}`+"\n",
		rtlTime(now))
}
