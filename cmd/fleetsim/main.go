// Command fleetsim runs a fleet of gateway uplinks in one process against
// a Mosquitto it starts on a loopback port, kills and restarts that cloud
// broker, and reports the reconnect storm: connects per second, the time
// until every backlog is drained, the cloud's CPU, gaps and losses per
// device, and the memory one gateway costs. See package
// gateway/uplink/fleet for the scenario; scripts/bench-fleet.sh runs it.
//
//	fleetsim -n 1000 -backlog 100
//	fleetsim -n 1000 -reconnect-min 20s -reconnect-max 2m
//
// The last line of the output has the form
//
//	fleet: N gateways, peak connects/s P, drained in T s, gaps G, lost L, KB per gateway M
//
// The exit status is 1 when a record was lost, a gap seen or the drain
// timed out, 2 on bad flags or a run that could not be carried out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/gateway/uplink/fleet"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o fleet.Options
	fs.IntVar(&o.Gateways, "n", 1000, "gateways")
	fs.IntVar(&o.Backlog, "backlog", 100, "records each gateway queues while the cloud is down")
	fs.IntVar(&o.Devices, "devices", 4, "devices per gateway")
	fs.StringVar(&o.Mosquitto, "mosquitto", "", "mosquitto `binary` (default from PATH or /usr/sbin)")
	fs.StringVar(&o.Dir, "dir", "", "work `directory` for the cloud and the queues (default a temporary one, removed)")
	fs.DurationVar(&o.Down, "down", 5*time.Second, "least time the cloud stays down")
	fs.Float64Var(&o.StartRate, "start-rate", 200, "gateways started per second before the restart (a large value: the fleet boots at once)")
	fs.IntVar(&o.Inflight, "inflight", 100, "the cloud's max_inflight_messages (the uplinks' Receive Maximum)")
	fs.DurationVar(&o.ReconnectMin, "reconnect-min", 0, "the uplinks' reconnect_min (0: the uplink's default)")
	fs.DurationVar(&o.ReconnectMax, "reconnect-max", 0, "the uplinks' reconnect_max (0: the uplink's default)")
	fs.DurationVar(&o.ReconnectSpread, "reconnect-spread", 20*time.Second, "the uplinks' reconnect_spread (the configuration's default)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "longest drain after the restart")
	verbose := fs.Bool("v", false, "log every uplink's state changes too")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "fleetsim: unexpected arguments:", fs.Args())
		return 2
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, nil))
	if *verbose {
		o.UplinkLog = o.Log
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "fleetsim-")
		if err != nil {
			fmt.Fprintln(stderr, "fleetsim:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := fleet.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "fleetsim:", err)
		return 2
	}
	fmt.Fprintf(stdout, "boot (%.0f gateways started per second): connects per second %v, peak %d\n",
		o.StartRate, res.BootConnects, res.BootPeak)
	fmt.Fprintln(stdout, "connects per second after the restart:")
	for i, c := range res.Connects {
		fmt.Fprintf(stdout, "  t+%3ds %5d\n", i, c)
	}
	fmt.Fprintf(stdout, "records %d, duplicates %d (QoS 1), drain complete %v\n", res.Records, res.Dups, res.Drain)
	fmt.Fprintf(stdout, "gateways with a gap: %d %s; with a lost record: %d %s\n",
		len(res.GapGateways), firstFew(res.GapGateways), len(res.LostGateways), firstFew(res.LostGateways))
	fmt.Fprintf(stdout, "cloud CPU %.2f s over the drain (%.0f %% of one core)\n",
		res.CloudCPU.Seconds(), 100*res.CloudCPU.Seconds()/max(res.Drained.Seconds(), 1e-3))
	fmt.Fprintf(stdout, "memory per gateway: RSS %.0f KB, Go heap and stacks %.0f KB\n",
		res.RSSPerGateway/1024, res.HeapPerGateway/1024)
	fmt.Fprintln(stdout, res.Line())
	if res.Gaps > 0 || res.Lost > 0 || !res.Drain {
		return 1
	}
	return 0
}

// firstFew lists up to five ids, for the summary.
func firstFew(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	if len(ids) > 5 {
		return fmt.Sprint(ids[:5], " …")
	}
	return fmt.Sprint(ids)
}
