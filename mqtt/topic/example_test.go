package topic_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgegw/edgegw/mqtt/topic"
)

func ExampleMatch() {
	fmt.Println(topic.Match("vehicles/+/telemetry/#", "vehicles/V1/telemetry/tpms"))
	fmt.Println(topic.Match("vehicles/+/telemetry/#", "vehicles/V1/telemetry"))
	fmt.Println(topic.Match("vehicles/+/cmd/+/+", "vehicles/V1/cmd/seat"))
	fmt.Println(topic.Match("#", "$SYS/broker/uptime"))
	// Output:
	// true
	// true
	// false
	// false
}

func ExampleValidFilter() {
	for _, f := range []string{"vehicles/+/telemetry/#", "vehicles/V1+/#", "vehicles/#/status"} {
		err := topic.ValidFilter(f)
		fmt.Printf("%s: %v (placement %v)\n", f, err, errors.Is(err, topic.ErrPlacement))
	}
	// Output:
	// vehicles/+/telemetry/#: <nil> (placement false)
	// vehicles/V1+/#: topic: wildcard not alone in its level: '+' at byte 11 (placement true)
	// vehicles/#/status: topic: '#' not the last level: '#' at byte 9 (placement false)
}

func ExampleParseShared() {
	for _, f := range []string{"$share/ingest/vehicles/+/telemetry/#", "vehicles/+/status", "$share//a"} {
		group, filter, err := topic.ParseShared(f)
		fmt.Printf("%q %q %v\n", group, filter, err)
	}
	// Output:
	// "ingest" "vehicles/+/telemetry/#" <nil>
	// "" "vehicles/+/status" <nil>
	// "" "" topic: invalid shared subscription: empty share name
}

// A broker's use of Tree: one subscription per client and filter, options
// as the value, and one reused slice for every PUBLISH.
func ExampleTree() {
	type opts struct {
		QoS   byte
		SubID int
	}
	var subs topic.Tree[string, opts]
	subs.Subscribe("vehicles/+/telemetry/#", "dashboard", opts{QoS: 0, SubID: 1})
	subs.Subscribe("vehicles/V1/telemetry/tpms", "dashboard", opts{QoS: 1, SubID: 2})
	subs.Subscribe("$share/ingest/vehicles/+/telemetry/#", "ingest-a", opts{QoS: 1})
	subs.Subscribe("$share/ingest/vehicles/+/telemetry/#", "ingest-b", opts{QoS: 1})
	replaced, _ := subs.Subscribe("vehicles/+/telemetry/#", "dashboard", opts{QoS: 1, SubID: 1})
	fmt.Println("replaced:", replaced, "subscriptions:", subs.Len())

	var buf []topic.Sub[string, opts]
	for range 2 {
		buf = subs.Match("vehicles/V1/telemetry/tpms", buf[:0])
		var lines []string
		for _, s := range buf {
			lines = append(lines, fmt.Sprintf("%s %q group=%q %+v", s.Key, s.Filter, s.Group, s.Value))
		}
		slices.Sort(lines)
		fmt.Println(strings.Join(lines, "\n"))
	}
	// Output:
	// replaced: true subscriptions: 4
	// dashboard "vehicles/+/telemetry/#" group="" {QoS:1 SubID:1}
	// dashboard "vehicles/V1/telemetry/tpms" group="" {QoS:1 SubID:2}
	// ingest-a "vehicles/+/telemetry/#" group="ingest" {QoS:1 SubID:0}
	// dashboard "vehicles/+/telemetry/#" group="" {QoS:1 SubID:1}
	// dashboard "vehicles/V1/telemetry/tpms" group="" {QoS:1 SubID:2}
	// ingest-b "vehicles/+/telemetry/#" group="ingest" {QoS:1 SubID:0}
}

// A broker's retained messages: on SUBSCRIBE, find those the new filter
// matches.
func ExampleNames() {
	var retained topic.Names[[]byte]
	retained.Set("vehicles/V1/status", []byte("online"))
	retained.Set("vehicles/V2/status", []byte("offline"))
	retained.Set("vehicles/V1/telemetry/tpms", []byte(`{"seq":7}`))
	retained.Set("$SYS/broker/uptime", []byte("42"))

	for _, f := range []string{"vehicles/+/status", "vehicles/V1/#", "#"} {
		got := retained.Match(f, nil)
		slices.SortFunc(got, func(a, b topic.Entry[[]byte]) int { return strings.Compare(a.Name, b.Name) })
		fmt.Print(f, ":")
		for _, e := range got {
			fmt.Printf(" %s=%s", e.Name, e.Value)
		}
		fmt.Println()
	}
	// Output:
	// vehicles/+/status: vehicles/V1/status=online vehicles/V2/status=offline
	// vehicles/V1/#: vehicles/V1/status=online vehicles/V1/telemetry/tpms={"seq":7}
	// #: vehicles/V1/status=online vehicles/V1/telemetry/tpms={"seq":7} vehicles/V2/status=offline
}
