package topic

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// refValid is a second, deliberately naive reading of the rules of
// ValidName (filter false) and ValidFilter (filter true).
func refValid(s string, filter bool) bool {
	if s == "" || len(s) > MaxLen || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return false
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		switch {
		case !filter && strings.ContainsAny(l, "+#"):
			return false
		case strings.Contains(l, "+") && l != "+":
			return false
		case strings.Contains(l, "#") && (l != "#" || i != len(levels)-1):
			return false
		}
	}
	return true
}

// refMatch is a second, deliberately naive reading of the rules of Match.
func refMatch(filter, name string) bool {
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, n := strings.Split(filter, "/"), strings.Split(name, "/")
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(n) || (l != "+" && l != n[i]) {
			return false
		}
	}
	return len(f) == len(n)
}

func FuzzValidName(f *testing.F) {
	for _, tt := range validNameTests {
		f.Add(tt.in)
	}
	for _, tt := range matchTests {
		f.Add(tt.name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidName(s)
		if (err == nil) != refValid(s, false) {
			t.Fatalf("ValidName(%q) = %v, reference says valid = %v", s, err, refValid(s, false))
		}
		if err != nil {
			return
		}
		if strings.ContainsAny(s, "+#") {
			t.Fatalf("ValidName(%q) = nil with a wildcard [MQTT-3.3.2-2]", s)
		}
		if err := ValidFilter(s); err != nil {
			t.Fatalf("valid name %q is not a valid filter: %v", s, err)
		}
		if !Match(s, s) {
			t.Fatalf("Match(%q, %q) = false: a name must match itself", s, s)
		}
		if got, want := Match("#", s), !strings.HasPrefix(s, "$"); got != want {
			t.Fatalf("Match(#, %q) = %v, want %v [MQTT-4.7.2-1]", s, got, want)
		}
	})
}

func FuzzValidFilter(f *testing.F) {
	for _, tt := range validFilterTests {
		f.Add(tt.in)
	}
	for _, tt := range parseSharedTests {
		f.Add(tt.in)
	}
	for _, tt := range matchTests {
		f.Add(tt.filter)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidFilter(s)
		if (err == nil) != refValid(s, true) {
			t.Fatalf("ValidFilter(%q) = %v, reference says valid = %v", s, err, refValid(s, true))
		}
		g, ff, perr := ParseShared(s)
		if err != nil {
			if perr == nil {
				t.Fatalf("ParseShared(%q) accepted an invalid filter", s)
			}
			return
		}
		if perr != nil {
			if !strings.HasPrefix(s, SharePrefix) {
				t.Fatalf("ParseShared(%q) = %v for a valid filter that is not shared", s, perr)
			}
			return
		}
		switch {
		case g == "" && ff != s,
			g != "" && s != SharePrefix+g+"/"+ff,
			strings.ContainsAny(g, "/+#"),
			ValidFilter(ff) != nil:
			t.Fatalf("ParseShared(%q) = %q, %q: inconsistent", s, g, ff)
		}
		if (ValidName(s) == nil) == strings.ContainsAny(s, "+#") {
			t.Fatalf("ValidName(%q) disagrees with the wildcards in a valid filter", s)
		}
		// Match of a filter against a name built from it.
		name := strings.NewReplacer("+", "x", "#", "y/z").Replace(s)
		if want := !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "#") || !strings.HasPrefix(name, "$"); Match(s, name) != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", s, name, !want, want)
		}
	})
}

// FuzzMatchTree builds a Tree and a Names from newline-separated filters and
// names and checks both against brute-force Match, and Match against
// refMatch.
func FuzzMatchTree(f *testing.F) {
	var allFilters, allNames []string
	for _, tt := range matchTests {
		f.Add(tt.filter, tt.name)
		allFilters = append(allFilters, tt.filter)
		allNames = append(allNames, tt.name)
	}
	f.Add(strings.Join(allFilters, "\n"), strings.Join(allNames, "\n"))
	f.Add("$share/g/a/+\n$share/g/a/+\n$share/h/a/#\na/+\n#\n+/+\n$share/g/#", "a/b\na\n$x/b\n/")
	filters, _ := fleetFilters(3)
	f.Add(strings.Join(filters, "\n"), strings.Join(fleetNames(3), "\n"))

	f.Fuzz(func(t *testing.T, filterList, nameList string) {
		fs := strings.Split(filterList, "\n")
		ns := strings.Split(nameList, "\n")
		if len(fs) > 64 || len(ns) > 64 || len(filterList)+len(nameList) > 1<<14 {
			return
		}
		type sub struct {
			filter string // as subscribed, maybe "$share/…"
			key    int
		}
		var tr Tree[int, int]
		model := map[sub]int{}
		for i, fl := range fs {
			s := sub{fl, i % 3}
			_, had := model[s]
			replaced, err := tr.Subscribe(fl, s.key, i)
			if _, _, perr := ParseShared(fl); (err == nil) != (perr == nil) {
				t.Fatalf("Subscribe(%q) = %v, ParseShared says %v", fl, err, perr)
			}
			if err != nil {
				continue
			}
			if replaced != had {
				t.Fatalf("Subscribe(%q, %d) replaced = %v, want %v", fl, s.key, replaced, had)
			}
			model[s] = i
		}
		var sm Names[int]
		names := map[string]int{}
		for i, n := range ns {
			if ValidName(n) != nil {
				continue
			}
			sm.Set(n, i)
			names[n] = i
		}

		check := func() {
			t.Helper()
			if tr.Len() != len(model) {
				t.Fatalf("Len() = %d, want %d", tr.Len(), len(model))
			}
			for n := range names {
				var want []Sub[int, int]
				groups := map[[2]string]map[int]bool{} // (filter, group) → members
				plain := 0
				for s, v := range model {
					g, ff, _ := ParseShared(s.filter)
					m := Match(ff, n)
					if r := refMatch(ff, n); m != r {
						t.Fatalf("Match(%q, %q) = %v, refMatch = %v", ff, n, m, r)
					}
					if !m {
						continue
					}
					want = append(want, Sub[int, int]{Filter: ff, Group: g, Key: s.key, Value: v})
					if g == "" {
						plain++
					} else {
						id := [2]string{ff, g}
						if groups[id] == nil {
							groups[id] = map[int]bool{}
						}
						groups[id][s.key] = true
					}
				}
				got := tr.MatchAll(n, nil)
				// slices.Equal first: go-cmp is slow enough to
				// dominate the fuzzer's time.
				if !slices.Equal(sortSubs(want), sortSubs(got)) {
					diff := gocmp.Diff(want, got, cmpopts.EquateEmpty())
					t.Fatalf("MatchAll(%q) disagrees with brute force (-want +got):\n%s", n, diff)
				}
				one := tr.Match(n, nil)
				if len(one) != plain+len(groups) {
					t.Fatalf("Match(%q) = %d subscriptions, want %d plain + %d groups", n, len(one), plain, len(groups))
				}
				for _, s := range one {
					if s.Group != "" && !groups[[2]string{s.Filter, s.Group}][s.Key] {
						t.Fatalf("Match(%q) picked %+v, not a member", n, s)
					}
				}
			}
			for _, fl := range fs {
				_, ff, err := ParseShared(fl)
				if err != nil {
					continue
				}
				var want []Entry[int]
				for n, v := range names {
					if Match(ff, n) {
						want = append(want, Entry[int]{n, v})
					}
				}
				got := sm.Match(ff, nil)
				if !slices.Equal(sortEntries(want), sortEntries(got)) {
					diff := gocmp.Diff(want, got, cmpopts.EquateEmpty())
					t.Fatalf("Names.Match(%q) disagrees with brute force (-want +got):\n%s", ff, diff)
				}
			}
		}
		check()

		// Remove every other subscription (in a stable order), check
		// again, then remove the rest: the tree must end up empty.
		keys := make([]sub, 0, len(model))
		for s := range model {
			keys = append(keys, s)
		}
		slices.SortFunc(keys, func(a, b sub) int {
			return cmp.Or(cmp.Compare(a.filter, b.filter), cmp.Compare(a.key, b.key))
		})
		for i, s := range keys {
			if i%2 == 0 {
				if !tr.Unsubscribe(s.filter, s.key) {
					t.Fatalf("Unsubscribe(%q, %d) = false", s.filter, s.key)
				}
				delete(model, s)
			}
		}
		check()
		for s := range model {
			if !tr.Unsubscribe(s.filter, s.key) || tr.Unsubscribe(s.filter, s.key) {
				t.Fatalf("Unsubscribe(%q, %d) twice: want true, false", s.filter, s.key)
			}
		}
		for n := range names {
			if !sm.Delete(n) {
				t.Fatalf("Names.Delete(%q) = false", n)
			}
		}
		if tr.Len() != 0 || !tr.root.empty() || sm.Len() != 0 || sm.root.children.len() != 0 {
			t.Fatalf("tree or names not empty after removing everything")
		}
	})
}
