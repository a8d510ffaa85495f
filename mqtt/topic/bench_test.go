package topic

import (
	"fmt"
	"runtime"
	"testing"
)

// fleetFilters returns the subscriptions of a vehicle fleet: five concrete
// filters per vehicle (its own dashboard and ECUs) and a few wildcard ones
// (a cloud bridge, an alarm monitor, a shared ingest group, a logger).
// n vehicles give 5n+6 filters.
func fleetFilters(n int) (filters []string, keys []int) {
	for v := range n {
		id := fmt.Sprintf("V%05d", v)
		for _, f := range []string{
			"vehicles/" + id + "/telemetry/tpms",
			"vehicles/" + id + "/telemetry/cabin",
			"vehicles/" + id + "/cmd/+/+",
			"vehicles/" + id + "/status",
			"vehicles/" + id + "/alarm/#",
		} {
			filters = append(filters, f)
			keys = append(keys, v)
		}
	}
	for i, f := range []string{
		"vehicles/+/telemetry/#",
		"vehicles/+/alarm/+/+",
		"vehicles/+/status",
		"fleet/#",
		"$share/ingest/vehicles/+/telemetry/#",
		"$SYS/#",
	} {
		filters = append(filters, f)
		keys = append(keys, 1_000_000+i)
	}
	return filters, keys
}

func fleetTree(n int) *Tree[int, opts] {
	tr := new(Tree[int, opts])
	filters, keys := fleetFilters(n)
	for i, f := range filters {
		if _, err := tr.Subscribe(f, keys[i], opts{QoS: 1, SubID: i}); err != nil {
			panic(err)
		}
	}
	return tr
}

// fleetNames returns topic names a fleet publishes, spread over n vehicles.
func fleetNames(n int) []string {
	var names []string
	for v := 0; v < n; v += 7 {
		id := fmt.Sprintf("V%05d", v)
		names = append(names,
			"vehicles/"+id+"/telemetry/tpms",
			"vehicles/"+id+"/telemetry/gps",
			"vehicles/"+id+"/cmd/seat/heat",
			"vehicles/"+id+"/status",
			"vehicles/"+id+"/alarm/tpms/fl",
			"fleet/announce",
		)
	}
	return names
}

const benchVehicles = 2000 // 10,006 filters

var sinkSubs []Sub[int, opts]

func BenchmarkTreeMatch(b *testing.B) {
	tr := fleetTree(benchVehicles)
	names := fleetNames(benchVehicles)
	buf := make([]Sub[int, opts], 0, 64)
	matches := 0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		buf = tr.Match(names[i%len(names)], buf[:0])
		matches += len(buf)
		i++
	}
	b.ReportMetric(float64(matches)/float64(b.N), "subs/op")
}

// BenchmarkTreeMatchNewBuffer matches without a reused buffer: one
// allocation per match.
func BenchmarkTreeMatchNewBuffer(b *testing.B) {
	tr := fleetTree(benchVehicles)
	names := fleetNames(benchVehicles)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		sinkSubs = tr.Match(names[i%len(names)], nil)
		i++
	}
}

func BenchmarkTreeMatchParallel(b *testing.B) {
	tr := fleetTree(benchVehicles)
	names := fleetNames(benchVehicles)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]Sub[int, opts], 0, 64)
		i := 0
		for pb.Next() {
			buf = tr.Match(names[i%len(names)], buf[:0])
			i++
		}
	})
}

// BenchmarkLinearMatch is the brute force the tree replaces: Match against
// every filter.
func BenchmarkLinearMatch(b *testing.B) {
	filters, _ := fleetFilters(benchVehicles)
	for i, f := range filters {
		if _, ff, err := ParseShared(f); err == nil {
			filters[i] = ff
		}
	}
	names := fleetNames(benchVehicles)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		name := names[i%len(names)]
		for _, f := range filters {
			Match(f, name)
		}
		i++
	}
}

// BenchmarkTreeSubscribe measures one Subscribe and one Unsubscribe of a new
// per-vehicle filter in a tree of 10,006 filters.
func BenchmarkTreeSubscribe(b *testing.B) {
	tr := fleetTree(benchVehicles)
	filters := make([]string, 1000)
	for i := range filters {
		filters[i] = fmt.Sprintf("vehicles/V%05d/telemetry/+/raw", i*benchVehicles/len(filters))
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		f := filters[i%len(filters)]
		tr.Subscribe(f, 7, opts{QoS: 1})
		tr.Unsubscribe(f, 7)
		i++
	}
}

// BenchmarkTreeResubscribe measures a Subscribe that replaces an existing
// subscription's options.
func BenchmarkTreeResubscribe(b *testing.B) {
	tr := fleetTree(benchVehicles)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		tr.Subscribe("vehicles/V00042/cmd/+/+", 42, opts{QoS: byte(i % 3)})
		i++
	}
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("vehicles/+/telemetry/#", "vehicles/V00042/telemetry/tpms")
	}
}

func BenchmarkValidFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if ValidFilter("vehicles/+/cmd/seat/#") != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if ValidName("vehicles/V00042/telemetry/tpms") != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkParseShared(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseShared("$share/ingest/vehicles/+/telemetry/#"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNamesMatch finds the retained messages of one vehicle among
// 10,000 retained names, as a dashboard's subscribe would.
func BenchmarkNamesMatch(b *testing.B) {
	var s Names[int]
	for v := range benchVehicles {
		id := fmt.Sprintf("V%05d", v)
		for j, p := range []string{"telemetry/tpms", "telemetry/cabin", "telemetry/gps", "status", "alarm/tpms/fl"} {
			s.Set("vehicles/"+id+"/"+p, j)
		}
	}
	filters := make([]string, 1000)
	for i := range filters {
		filters[i] = fmt.Sprintf("vehicles/V%05d/#", i*benchVehicles/len(filters))
	}
	buf := make([]Entry[int], 0, 16)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		buf = s.Match(filters[i%len(filters)], buf[:0])
		if len(buf) != 5 {
			b.Fatalf("Match found %d names, want 5", len(buf))
		}
		i++
	}
}

// BenchmarkTreeMemory reports the heap held per subscription by a tree of
// the fleet shape (10,006 filters), strings included.
func BenchmarkTreeMemory(b *testing.B) {
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr := fleetTree(benchVehicles)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(tr.Len()), "B/sub")
		runtime.KeepAlive(tr)
	}
}
