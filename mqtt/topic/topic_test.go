package topic

import (
	"errors"
	"strings"
	"testing"
)

var validNameTests = []struct {
	name   string
	in     string
	want   error // nil, or the sentinel errors.Is must find
	clause string
}{
	{"simple", "vehicles/V1/telemetry/tpms", nil, "MQTT-4.7.3-1"},
	{"one byte", "a", nil, "MQTT-4.7.3-1"},
	{"only separator", "/", nil, "MQTT-4.7.1"},
	{"leading separator", "/finance", nil, "MQTT-4.7.1"},
	{"trailing separator", "finance/", nil, "MQTT-4.7.1"},
	{"empty levels", "a//b", nil, "MQTT-4.7.1"},
	{"space", "sport/tennis player1", nil, "MQTT-4.7.3"},
	{"dollar", "$SYS/broker/clients", nil, "MQTT-4.7.2"},
	{"unicode", "véhicules/χ/日本", nil, "MQTT-1.5.4"},
	{"max length", strings.Repeat("a", MaxLen), nil, "MQTT-4.7.3-3"},
	{"empty", "", ErrEmpty, "MQTT-4.7.3-1"},
	{"too long", strings.Repeat("a", MaxLen+1), ErrTooLong, "MQTT-4.7.3-3"},
	{"nul", "a\x00b", ErrNUL, "MQTT-4.7.3-2"},
	{"invalid utf8", "a\xffb", ErrInvalidUTF8, "MQTT-1.5.4-1"},
	{"truncated utf8", "a\xc3", ErrInvalidUTF8, "MQTT-1.5.4-1"},
	{"surrogate", "a\xed\xa0\x80", ErrInvalidUTF8, "MQTT-1.5.4-1"},
	{"overlong", "\xc0\xaf", ErrInvalidUTF8, "MQTT-1.5.4-1"},
	{"plus", "sport/+", ErrWildcard, "MQTT-3.3.2-2"},
	{"hash", "sport/#", ErrWildcard, "MQTT-3.3.2-2"},
	{"plus inside level", "a+b", ErrWildcard, "MQTT-3.3.2-2"},
}

func TestValidName(t *testing.T) {
	for _, tt := range validNameTests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.in)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("ValidName(%.40q) = %v, want %v [%s]", tt.in, err, tt.want, tt.clause)
			}
		})
	}
}

var validFilterTests = []struct {
	name   string
	in     string
	want   error
	clause string
}{
	{"name", "sport/tennis/player1", nil, "MQTT-4.7.3-1"},
	{"hash alone", "#", nil, "MQTT-4.7.1-2"},
	{"hash last", "sport/tennis/player1/#", nil, "MQTT-4.7.1-2"},
	{"hash after empty level", "/#", nil, "MQTT-4.7.1-2"},
	{"hash after empty levels", "a//#", nil, "MQTT-4.7.1-2"},
	{"plus alone", "+", nil, "MQTT-4.7.1-3"},
	{"plus level", "sport/+/player1", nil, "MQTT-4.7.1-3"},
	{"plus first", "+/tennis/#", nil, "MQTT-4.7.1-3"},
	{"plus last", "sport/+", nil, "MQTT-4.7.1-3"},
	{"plus plus", "+/+", nil, "MQTT-4.7.1-3"},
	{"plus empty", "/+", nil, "MQTT-4.7.1-3"},
	{"plus hash", "+/#", nil, "MQTT-4.7.1-3"},
	{"empty levels", "//", nil, "MQTT-4.7.1"},
	{"shared", "$share/g/vehicles/+/cmd/#", nil, "MQTT-4.8.2"},
	{"max length", strings.Repeat("+/", MaxLen/2) + "#", nil, "MQTT-4.7.3-3"},
	{"empty", "", ErrEmpty, "MQTT-4.7.3-1"},
	{"too long", strings.Repeat("+/", MaxLen/2) + "a/", ErrTooLong, "MQTT-4.7.3-3"},
	{"nul", "a/\x00", ErrNUL, "MQTT-4.7.3-2"},
	{"invalid utf8", "+/\xfe", ErrInvalidUTF8, "MQTT-1.5.4-1"},
	{"hash not last", "sport/tennis/#/ranking", ErrHashNotLast, "MQTT-4.7.1-2"},
	{"hash then separator", "#/", ErrHashNotLast, "MQTT-4.7.1-2"},
	{"hash in level", "sport/tennis#", ErrPlacement, "MQTT-4.7.1-2"},
	{"hash hash", "##", ErrPlacement, "MQTT-4.7.1-2"},
	{"plus in level", "sport+", ErrPlacement, "MQTT-4.7.1-3"},
	{"plus before text", "sport/+x", ErrPlacement, "MQTT-4.7.1-3"},
	{"plus plus in level", "++", ErrPlacement, "MQTT-4.7.1-3"},
	{"plus hash in level", "+#", ErrPlacement, "MQTT-4.7.1-3"},
}

func TestValidFilter(t *testing.T) {
	for _, tt := range validFilterTests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidFilter(tt.in)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("ValidFilter(%.40q) = %v, want %v [%s]", tt.in, err, tt.want, tt.clause)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	for _, err := range []error{
		ValidName(""), ValidName("a/#"), ValidFilter("a#"), ValidFilter("#/a"),
		ValidFilter("\xff"), ValidName("\x00"), func() error { _, _, err := ParseShared("$share//a"); return err }(),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "topic: ") {
			t.Errorf("error %q does not start with %q", err, "topic: ")
		}
	}
}

var parseSharedTests = []struct {
	name          string
	in            string
	group, filter string
	want          error
	clause        string
}{
	{"not shared", "a/b", "", "a/b", nil, "MQTT-4.8.2"},
	{"dollar", "$SYS/#", "", "$SYS/#", nil, "MQTT-4.8.2"},
	{"share word", "$share", "", "$share", nil, "MQTT-4.8.2"},
	{"share without separator", "$sharex/a", "", "$sharex/a", nil, "MQTT-4.8.2"},
	{"shared", "$share/g1/vehicles/+/cmd/#", "g1", "vehicles/+/cmd/#", nil, "MQTT-4.8.2-1"},
	{"shared hash", "$share/g/#", "g", "#", nil, "MQTT-4.8.2-1"},
	{"shared empty level", "$share/g//", "g", "/", nil, "MQTT-4.8.2-2"},
	{"empty group", "$share//a", "", "", ErrInvalidShared, "MQTT-4.8.2-1"},
	{"no filter", "$share/g", "", "", ErrInvalidShared, "MQTT-4.8.2-2"},
	{"empty filter", "$share/g/", "", "", ErrInvalidShared, "MQTT-4.8.2-2"},
	{"only prefix", "$share/", "", "", ErrInvalidShared, "MQTT-4.8.2-1"},
	{"plus group", "$share/+/a", "", "", ErrInvalidShared, "MQTT-4.8.2-2"},
	{"hash group", "$share/#", "", "", ErrInvalidShared, "MQTT-4.8.2-2"},
	{"bad filter", "$share/g/a#", "", "", ErrPlacement, "MQTT-4.7.1-2"},
	{"bad plain filter", "a/#/b", "", "", ErrHashNotLast, "MQTT-4.7.1-2"},
}

func TestParseShared(t *testing.T) {
	for _, tt := range parseSharedTests {
		t.Run(tt.name, func(t *testing.T) {
			g, f, err := ParseShared(tt.in)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || g != tt.group || f != tt.filter {
				t.Errorf("ParseShared(%q) = %q, %q, %v, want %q, %q, %v [%s]",
					tt.in, g, f, err, tt.group, tt.filter, tt.want, tt.clause)
			}
		})
	}
}

var matchTests = []struct {
	filter, name string
	want         bool
	clause       string
}{
	{"sport/tennis/player1", "sport/tennis/player1", true, "MQTT-4.7.3"},
	{"sport/tennis/player1", "sport/tennis/player2", false, "MQTT-4.7.3"},
	{"sport/tennis/player1", "sport/tennis", false, "MQTT-4.7.3"},
	{"sport/tennis", "sport/tennis/player1", false, "MQTT-4.7.3"},
	{"Sport", "sport", false, "MQTT-4.7.3-4"},
	{"a", "a ", false, "MQTT-4.7.3-4"},
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis", false, "MQTT-4.7.1-2"},
	{"sport/#", "sport", true, "MQTT-4.7.1-2"},
	{"sport/#", "sport/", true, "MQTT-4.7.1-2"},
	{"sport/#", "sports", false, "MQTT-4.7.1-2"},
	{"#", "sport/tennis", true, "MQTT-4.7.1-2"},
	{"#", "/", true, "MQTT-4.7.1-2"},
	{"/#", "/", true, "MQTT-4.7.1-2"},
	{"/#", "a", false, "MQTT-4.7.1-2"},
	{"sport/tennis/+", "sport/tennis/player1", true, "MQTT-4.7.1-3"},
	{"sport/tennis/+", "sport/tennis/player2", true, "MQTT-4.7.1-3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "MQTT-4.7.1-3"},
	{"sport/+", "sport", false, "MQTT-4.7.1-3"},
	{"sport/+", "sport/", true, "MQTT-4.7.1-3"},
	{"+", "sport", true, "MQTT-4.7.1-3"},
	{"+", "", true, "MQTT-4.7.1-3"},
	{"+", "/finance", false, "MQTT-4.7.1-3"},
	{"+/+", "/finance", true, "MQTT-4.7.1-3"},
	{"/+", "/finance", true, "MQTT-4.7.1-3"},
	{"+/+", "a", false, "MQTT-4.7.1-3"},
	{"+/#", "a", true, "MQTT-4.7.1-3"},
	{"+/+/#", "a", false, "MQTT-4.7.1-3"},
	{"+/tennis/#", "sport/tennis/player1", true, "MQTT-4.7.1-3"},
	{"sport/+/player1", "sport/tennis/player1", true, "MQTT-4.7.1-3"},
	{"a//b", "a//b", true, "MQTT-4.7.1"},
	{"a/+/b", "a//b", true, "MQTT-4.7.1"},
	{"a/b", "a//b", false, "MQTT-4.7.1"},
	{"#", "$SYS/broker", false, "MQTT-4.7.2-1"},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false, "MQTT-4.7.2-1"},
	{"+", "$SYS", false, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS/monitor/Clients", true, "MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS", true, "MQTT-4.7.2-1"},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true, "MQTT-4.7.2-1"},
	{"a/+", "a/$b", true, "MQTT-4.7.2-1"},
	{"a/#", "a/$b/c", true, "MQTT-4.7.2-1"},
	{"vehicles/+/telemetry/#", "vehicles/V1/telemetry/tpms", true, "MQTT-4.7.1"},
	{"vehicles/+/cmd/+/+", "vehicles/V1/cmd/seat/heat", true, "MQTT-4.7.1"},
	{"vehicles/+/cmd/+/+", "vehicles/V1/cmd/seat/heat/result", false, "MQTT-4.7.1"},
	{"véhicule/+", "véhicule/χ", true, "MQTT-4.7.3-4"},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got := Match(tt.filter, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v [%s]", tt.filter, tt.name, got, tt.want, tt.clause)
		}
		if err := ValidFilter(tt.filter); err != nil {
			t.Errorf("ValidFilter(%q) = %v in a match test", tt.filter, err)
		}
		if err := ValidName(tt.name); err != nil && tt.name != "" {
			t.Errorf("ValidName(%q) = %v in a match test", tt.name, err)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("vehicles/+/telemetry/#", "vehicles/V1/telemetry/tpms")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times, want 0", allocs)
	}
}
