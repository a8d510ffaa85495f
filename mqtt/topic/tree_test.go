package topic

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// opts stands for a broker's per-subscription options.
type opts struct {
	QoS   byte
	SubID int
}

func sortSubs[K cmp.Ordered, V any](s []Sub[K, V]) []Sub[K, V] {
	slices.SortFunc(s, func(a, b Sub[K, V]) int {
		return cmp.Or(cmp.Compare(a.Filter, b.Filter), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Key, b.Key))
	})
	return s
}

func TestTreeMatchTable(t *testing.T) {
	// Every filter of the match table in one tree, each by its own
	// subscriber: the tree must agree with Match on every name.
	var tr Tree[int, opts]
	filters := map[string]int{}
	for _, tt := range matchTests {
		if _, ok := filters[tt.filter]; !ok {
			filters[tt.filter] = len(filters)
			if _, err := tr.Subscribe(tt.filter, filters[tt.filter], opts{SubID: filters[tt.filter]}); err != nil {
				t.Fatalf("Subscribe(%q) = %v", tt.filter, err)
			}
		}
	}
	if tr.Len() != len(filters) {
		t.Errorf("Len() = %d, want %d", tr.Len(), len(filters))
	}
	for _, tt := range matchTests {
		var want []Sub[int, opts]
		for f, k := range filters {
			if Match(f, tt.name) {
				want = append(want, Sub[int, opts]{Filter: f, Key: k, Value: opts{SubID: k}})
			}
		}
		got := tr.Match(tt.name, nil)
		if diff := gocmp.Diff(sortSubs(want), sortSubs(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Match(%q) mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestTreeSubscribe(t *testing.T) {
	var tr Tree[string, opts]
	type op struct {
		sub, unsub   bool
		filter, key  string
		qos          byte
		wantReplaced bool // or, for unsub, the result
		wantErr      bool
	}
	ops := []op{
		{sub: true, filter: "a/+", key: "c1", qos: 0},
		{sub: true, filter: "a/+", key: "c1", qos: 2, wantReplaced: true}, // [MQTT-3.8.4-3]
		{sub: true, filter: "a/#", key: "c1", qos: 1},                     // overlapping [MQTT-3.3.4-2]
		{sub: true, filter: "a/+", key: "c2", qos: 1},
		{sub: true, filter: "a/b#", key: "c2", wantErr: true},
		{sub: true, filter: "$share/g/a/+", key: "c2", qos: 1}, // shared is a separate subscription
		{sub: true, filter: "$share/g/a/+", key: "c2", qos: 0, wantReplaced: true},
		{sub: true, filter: "$share//a", key: "c2", wantErr: true},
		{unsub: true, filter: "a/b", key: "c1", wantReplaced: false},
		{unsub: true, filter: "a/+", key: "c3", wantReplaced: false},
		{unsub: true, filter: "$share/h/a/+", key: "c2", wantReplaced: false},
		{unsub: true, filter: "a/#/b", key: "c1", wantReplaced: false},
	}
	for i, o := range ops {
		if o.unsub {
			if got := tr.Unsubscribe(o.filter, o.key); got != o.wantReplaced {
				t.Errorf("op %d: Unsubscribe(%q, %q) = %v, want %v", i, o.filter, o.key, got, o.wantReplaced)
			}
			continue
		}
		replaced, err := tr.Subscribe(o.filter, o.key, opts{QoS: o.qos})
		if replaced != o.wantReplaced || (err != nil) != o.wantErr {
			t.Errorf("op %d: Subscribe(%q, %q) = %v, %v, want %v, error %v", i, o.filter, o.key, replaced, err, o.wantReplaced, o.wantErr)
		}
	}
	if got, want := tr.Len(), 4; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	want := []Sub[string, opts]{
		{Filter: "a/#", Key: "c1", Value: opts{QoS: 1}},
		{Filter: "a/+", Key: "c1", Value: opts{QoS: 2}},
		{Filter: "a/+", Key: "c2", Value: opts{QoS: 1}},
		{Filter: "a/+", Group: "g", Key: "c2", Value: opts{QoS: 0}},
	}
	if diff := gocmp.Diff(want, sortSubs(tr.Match("a/x", nil))); diff != "" {
		t.Errorf("Match(a/x) mismatch (-want +got):\n%s", diff)
	}
	for _, f := range []string{"a/+", "a/#", "$share/g/a/+"} {
		for _, k := range []string{"c1", "c2"} {
			tr.Unsubscribe(f, k)
		}
	}
	if tr.Len() != 0 || !tr.root.empty() {
		t.Errorf("after unsubscribing all: Len() = %d, root %+v, want an empty tree", tr.Len(), tr.root)
	}
	if got := tr.Match("a/x", nil); len(got) != 0 {
		t.Errorf("Match on an empty tree = %v", got)
	}
}

// TestTreeDollar checks [MQTT-4.7.2-1] in the tree.
func TestTreeDollar(t *testing.T) {
	var tr Tree[int, int]
	for i, f := range []string{"#", "+/broker", "$SYS/#", "$SYS/+", "+/#", "$share/g/#"} {
		tr.Subscribe(f, i, i)
	}
	tests := []struct {
		name string
		want []int
	}{
		{"$SYS/broker", []int{2, 3}},
		{"SYS/broker", []int{0, 1, 4, 5}},
		{"$SYS", []int{2}},
	}
	for _, tt := range tests {
		var got []int
		for _, s := range tr.Match(tt.name, nil) {
			got = append(got, s.Key)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) keys = %v, want %v [MQTT-4.7.2-1]", tt.name, got, tt.want)
		}
	}
}

// TestTreeShared checks that each shared subscription delivers to one member,
// round-robin, and that two groups on one filter each deliver [MQTT-4.8.2].
func TestTreeShared(t *testing.T) {
	var tr Tree[string, int]
	for _, k := range []string{"a", "b", "c"} {
		tr.Subscribe("$share/g1/v/+/cmd/#", k, 1)
	}
	tr.Subscribe("$share/g2/v/+/cmd/#", "d", 2)
	tr.Subscribe("$share/g1/v/#", "e", 3) // another filter: another shared subscription
	tr.Subscribe("v/#", "a", 4)
	count := map[string]int{}
	var buf []Sub[string, int]
	for range 6 {
		buf = tr.Match("v/1/cmd/x", buf[:0])
		if len(buf) != 4 {
			t.Fatalf("Match = %v, want 4 subscriptions (g1, g2, g1 on v/#, v/#)", buf)
		}
		for _, s := range buf {
			if s.Group == "g1" && s.Filter == "v/+/cmd/#" {
				count[s.Key]++
			}
		}
	}
	if diff := gocmp.Diff(map[string]int{"a": 2, "b": 2, "c": 2}, count); diff != "" {
		t.Errorf("round-robin picks (-want +got):\n%s", diff)
	}
	all := sortSubs(tr.MatchAll("v/1/cmd/x", nil))
	want := []Sub[string, int]{
		{Filter: "v/#", Key: "a", Value: 4},
		{Filter: "v/#", Group: "g1", Key: "e", Value: 3},
		{Filter: "v/+/cmd/#", Group: "g1", Key: "a", Value: 1},
		{Filter: "v/+/cmd/#", Group: "g1", Key: "b", Value: 1},
		{Filter: "v/+/cmd/#", Group: "g1", Key: "c", Value: 1},
		{Filter: "v/+/cmd/#", Group: "g2", Key: "d", Value: 2},
	}
	if diff := gocmp.Diff(want, all); diff != "" {
		t.Errorf("MatchAll mismatch (-want +got):\n%s", diff)
	}
	if !tr.Unsubscribe("$share/g2/v/+/cmd/#", "d") || tr.Unsubscribe("$share/g2/v/+/cmd/#", "d") {
		t.Errorf("Unsubscribe of a shared member: want true then false")
	}
	if got := len(tr.Match("v/1/cmd/x", nil)); got != 3 {
		t.Errorf("after the last member of g2 left: %d matches, want 3", got)
	}
}

// TestTreeManySubscribers exercises the indexed list on one filter.
func TestTreeManySubscribers(t *testing.T) {
	var tr Tree[int, int]
	const n = 200
	for i := range n {
		tr.Subscribe("fleet/#", i, i)
	}
	for i := 0; i < n; i += 2 {
		if r, _ := tr.Subscribe("fleet/#", i, -i); !r {
			t.Fatalf("Subscribe(fleet/#, %d) again: replaced = false", i)
		}
	}
	for i := 1; i < n; i += 2 {
		if !tr.Unsubscribe("fleet/#", i) {
			t.Fatalf("Unsubscribe(fleet/#, %d) = false", i)
		}
	}
	got := tr.Match("fleet/x", nil)
	if len(got) != n/2 || tr.Len() != n/2 {
		t.Fatalf("Match = %d subs, Len = %d, want %d", len(got), tr.Len(), n/2)
	}
	for _, s := range got {
		if s.Key%2 != 0 || s.Value != -s.Key {
			t.Errorf("Match gives %+v, want even keys with negated values", s)
		}
	}
	for i := 0; i < n; i += 2 {
		if !tr.Unsubscribe("fleet/#", i) {
			t.Fatalf("Unsubscribe(fleet/#, %d) = false", i)
		}
	}
	if !tr.root.empty() {
		t.Errorf("tree not empty after unsubscribing everyone")
	}
}

func TestTreeMatchAllocs(t *testing.T) {
	tr := fleetTree(100)
	buf := make([]Sub[int, opts], 0, 64)
	names := fleetNames(100)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		buf = tr.Match(names[i%len(names)], buf[:0])
		i++
	})
	if allocs != 0 {
		t.Errorf("Match with a reused buffer allocates %v times, want 0", allocs)
	}
}

// TestTreeConcurrent runs matches against concurrent changes; run with -race.
func TestTreeConcurrent(t *testing.T) {
	var tr Tree[int, int]
	tr.Subscribe("fleet/#", -1, 0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var buf []Sub[int, int]
			for i := range 500 {
				if w%2 == 0 {
					f := fmt.Sprintf("fleet/%d/+", i%20)
					tr.Subscribe(f, w, i)
					tr.Unsubscribe(f, w)
					continue
				}
				buf = tr.Match(fmt.Sprintf("fleet/%d/x", i%20), buf[:0])
				if !slices.ContainsFunc(buf, func(s Sub[int, int]) bool { return s.Key == -1 }) {
					t.Errorf("Match lost the subscription to fleet/#")
					return
				}
			}
		})
	}
	wg.Wait()
	if tr.Len() != 1 {
		t.Errorf("Len() = %d after balanced changes, want 1", tr.Len())
	}
}

// TestTreeDeep subscribes and matches filters of the maximum length, one
// level per two bytes [MQTT-4.7.3-3]: the recursion must stay correct.
func TestTreeDeep(t *testing.T) {
	var tr Tree[int, int]
	plus := strings.Repeat("+/", MaxLen/2) + "#"
	lit := strings.Repeat("a/", MaxLen/2-1) + "aa"
	for i, f := range []string{plus, lit} {
		if _, err := tr.Subscribe(f, i, i); err != nil {
			t.Fatalf("Subscribe(%d-byte filter) = %v", len(f), err)
		}
	}
	name := strings.Repeat("a/", MaxLen/2-1) + "aa" // as many levels as plus has '+'
	if got := tr.Match(name, nil); len(got) != 2 {
		t.Errorf("Match(deep name) = %d subscriptions, want 2 ('#' matches the parent level)", len(got))
	}
	if got := tr.Match(name+"/x", nil); len(got) != 1 || got[0].Key != 0 {
		t.Errorf("Match(deeper name) = %d subscriptions, want only the wildcard one", len(got))
	}
	var s Names[int]
	s.Set(name, 1)
	if got := s.Match(plus, nil); len(got) != 1 {
		t.Errorf("Names.Match(+/…/#) = %d names, want 1", len(got))
	}
	if got := s.Match(plus[:len(plus)-4], nil); len(got) != 0 {
		t.Errorf("Names.Match(+/…/+) = %d names, want 0 (one level short)", len(got))
	}
	if got := s.Match(strings.Repeat("+/", MaxLen/2-1)+"+", nil); len(got) != 1 {
		t.Errorf("Names.Match(+/…/+) = %d names, want 1", len(got))
	}
	if !tr.Unsubscribe(plus, 0) || !tr.Unsubscribe(lit, 1) || !tr.root.empty() || !s.Delete(name) {
		t.Errorf("removing the deep filters and name left something behind")
	}
}
