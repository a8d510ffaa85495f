package mqtttest

import (
	"fmt"
	"time"
)

// Link describes an emulated network link between a gateway (the client,
// "up" is its sending direction) and the cloud. It is plain data: tests
// and benchmarks build it with an in-process proxy (github.com/Shopify/
// toxiproxy/v2, a test-only dependency, in gateway/uplink's link_test.go).
type Link struct {
	Name string
	// Latency is added in each direction, ± Jitter (uniform).
	Latency, Jitter time.Duration
	// Up and Down are the bandwidths in bit/s, 0 for unlimited.
	Up, Down int64
	// CutEvery is the mean time between cuts of the link (every
	// connection reset, new ones refused) lasting CutMin..CutMax; 0 for
	// none.
	CutEvery, CutMin, CutMax time.Duration
	// StallEvery is the mean time between stalls: for StallMin..StallMax
	// nothing passes in either direction and nothing is reset, as when a
	// cellular link loses its radio bearer; the proxy closes the
	// connections at the stall's end, as a NAT that has forgotten them
	// would. 0 for none.
	StallEvery, StallMin, StallMax time.Duration
}

// Links is the one table of named link profiles: lan (loopback as is),
// lte, 3g and flaky (lte with cuts and stalls). Bandwidths are those a
// vehicle sees at a cell's edge, not the cell's peak.
var Links = []Link{
	{Name: "lan"},
	{Name: "lte", Latency: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Up: 2_000_000, Down: 10_000_000},
	{Name: "3g", Latency: 150 * time.Millisecond, Up: 384_000, Down: 2_000_000},
	{Name: "flaky", Latency: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Up: 2_000_000, Down: 10_000_000,
		CutEvery: 30 * time.Second, CutMin: 5 * time.Second, CutMax: 20 * time.Second,
		StallEvery: 60 * time.Second, StallMin: 3 * time.Second, StallMax: 10 * time.Second},
}

// LinkProfile returns the profile called name.
func LinkProfile(name string) (Link, error) {
	for _, l := range Links {
		if l.Name == name {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("mqtttest: no link profile %q", name)
}

// Faster returns l with its cuts and stalls (their intervals and lengths)
// divided by f, latency and bandwidth unchanged: flaky's weather in a
// test of seconds.
func (l Link) Faster(f float64) Link {
	div := func(d *time.Duration) { *d = time.Duration(float64(*d) / f) }
	for _, d := range []*time.Duration{&l.CutEvery, &l.CutMin, &l.CutMax, &l.StallEvery, &l.StallMin, &l.StallMax} {
		div(d)
	}
	return l
}
