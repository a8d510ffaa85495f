package topic

import (
	"cmp"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sortEntries[V any](e []Entry[V]) []Entry[V] {
	slices.SortFunc(e, func(a, b Entry[V]) int { return cmp.Compare(a.Name, b.Name) })
	return e
}

func TestNamesMatchTable(t *testing.T) {
	var s Names[string]
	names := map[string]bool{}
	for _, tt := range matchTests {
		if !names[tt.name] {
			names[tt.name] = true
			if s.Set(tt.name, "v:"+tt.name) {
				t.Fatalf("Set(%q) replaced a value on first use", tt.name)
			}
		}
	}
	if s.Len() != len(names) {
		t.Errorf("Len() = %d, want %d", s.Len(), len(names))
	}
	for _, tt := range matchTests {
		var want []Entry[string]
		for n := range names {
			if Match(tt.filter, n) {
				want = append(want, Entry[string]{n, "v:" + n})
			}
		}
		got := s.Match(tt.filter, nil)
		if diff := gocmp.Diff(sortEntries(want), sortEntries(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Match(%q) mismatch (-want +got):\n%s", tt.filter, diff)
		}
	}
	if got := len(s.All(nil)); got != len(names) {
		t.Errorf("All() has %d names, want %d", got, len(names))
	}
}

func TestNames(t *testing.T) {
	var s Names[int]
	s.Set("v/1/telemetry/tpms", 1)
	s.Set("v/1/telemetry", 2)
	s.Set("v/2/telemetry/tpms", 3)
	s.Set("$SYS/broker/uptime", 4)
	if !s.Set("v/1/telemetry", 5) {
		t.Errorf("Set of an existing name: replaced = false")
	}
	if v, ok := s.Get("v/1/telemetry"); !ok || v != 5 {
		t.Errorf("Get(v/1/telemetry) = %v, %v, want 5, true", v, ok)
	}
	if _, ok := s.Get("v/1"); ok {
		t.Errorf("Get(v/1) found an interior node")
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"v/+/telemetry/tpms", []string{"v/1/telemetry/tpms", "v/2/telemetry/tpms"}},
		{"v/1/#", []string{"v/1/telemetry", "v/1/telemetry/tpms"}},
		{"v/1/telemetry/#", []string{"v/1/telemetry", "v/1/telemetry/tpms"}}, // [MQTT-4.7.1-2]
		{"#", []string{"v/1/telemetry", "v/1/telemetry/tpms", "v/2/telemetry/tpms"}},
		{"+/#", []string{"v/1/telemetry", "v/1/telemetry/tpms", "v/2/telemetry/tpms"}},
		{"$SYS/#", []string{"$SYS/broker/uptime"}},
		{"v/3/#", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range s.Match(tt.filter, nil) {
			got = append(got, e.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.filter, got, tt.want)
		}
	}
	if s.Delete("v/1") || s.Delete("v/9/x") {
		t.Errorf("Delete of an absent name = true")
	}
	for _, n := range []string{"v/1/telemetry/tpms", "v/1/telemetry", "v/2/telemetry/tpms", "$SYS/broker/uptime"} {
		if !s.Delete(n) {
			t.Errorf("Delete(%q) = false", n)
		}
	}
	if s.Len() != 0 || s.root.children.len() != 0 {
		t.Errorf("after deleting all: Len() = %d, root children %v", s.Len(), s.root.children)
	}
}
