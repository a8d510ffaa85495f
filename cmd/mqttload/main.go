// Command mqttload is a load generator for MQTT brokers: N publishers and
// M subscribers at QoS 0, 1 or 2 over MQTT 3.1.1 or 5.0. It checks that
// every message arrived (none lost; at QoS 2 none duplicated; QoS 1
// duplicates are counted) and reports deliveries per second, p50/p99
// latency (the send time travels in the payload) and, given the broker's
// process id, the broker's CPU seconds per million delivered messages and
// its resident memory.
//
//	mqttload -addr 127.0.0.1:1883 -pubs 10 -subs 1 -qos 1 -d 5s -pid $(pidof mosquitto)
//	mqttload -pubs 50 -subs 50 -pairs -qos 1 -d 5s
//	mqttload -pubs 10 -subs 1 -qos 1 -rate 10000 -d 5s        fixed rate, for latency
//	mqttload -idle 1000 -pid 1234                            idle connections: RSS per connection
//	mqttload abuse -addr … -health … -pid 1234 -password …   attacks of issue 13 (see abuse.go, scripts/abuse.sh)
//
// It stays out of the way of the broker: PUBLISHes are encoded once and
// patched per message, written in batches with one flush each, and
// received ones are parsed in place in the read buffer. A publisher keeps
// at most -window QoS 1/2 messages unacknowledged and runs at most -ahead
// messages ahead of its subscribers, so a run measures the throughput at
// which nothing is dropped rather than the size of the broker's queues.
//
// Output: a human summary on stderr and one line of key=value pairs on
// stdout (see writeLine). The exit status is 1 when the run failed: an
// error, a lost QoS 1/2 message or a duplicated QoS 2 message.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "abuse":
			return runAbuse(args[1:], stdout, stderr)
		case "freeport":
			return freePort(stdout)
		}
	}
	fs := flag.NewFlagSet("mqttload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:1883", "broker `host:port`")
	version := fs.String("v", "3.1.1", "protocol version: 3.1.1 (or 4) or 5")
	qos := fs.Uint("qos", 0, "QoS of publications and subscriptions")
	fs.IntVar(&c.Pubs, "pubs", 10, "publishers")
	fs.IntVar(&c.Subs, "subs", 1, "subscribers")
	fs.BoolVar(&c.Pairs, "pairs", false, "publisher i to subscriber i on its own topic (needs -pubs = -subs); default: every subscriber takes every publisher through a wildcard")
	fs.IntVar(&c.Count, "n", 0, "messages per publisher (0: until -d)")
	fs.DurationVar(&c.Duration, "d", 5*time.Second, "publishing time (0: until -n)")
	fs.Float64Var(&c.Rate, "rate", 0, "total publications per second over all publishers (0: as fast as the flow allows)")
	fs.IntVar(&c.Size, "size", 100, "payload bytes (at least 16)")
	fs.IntVar(&c.Window, "window", 32, "unacknowledged QoS 1/2 publications per publisher (capped by the server's Receive Maximum)")
	fs.IntVar(&c.Ahead, "ahead", 500, "messages a publisher may be ahead of its subscribers (0: unbounded)")
	fs.IntVar(&c.Batch, "batch", 64, "most PUBLISHes per write")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "wait this long without progress for the last messages")
	fs.IntVar(&c.PID, "pid", 0, "broker process `id` for CPU and RSS figures (Linux /proc)")
	fs.IntVar(&c.Idle, "idle", 0, "idle mode: open this many connections, wait -idle-wait and report the broker's RSS per connection")
	fs.DurationVar(&c.IdleWait, "idle-wait", 2*time.Second, "idle mode: settling time before reading the RSS")
	fs.StringVar(&c.Prefix, "prefix", "", "topic prefix and client id stem (default mqttload/<random>)")
	label := fs.String("label", "", "free text copied into the output line as label=")
	timeout := fs.Duration("timeout", 0, "abort the run after this long (default -d + -drain + 1m)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mqttload: unexpected arguments:", fs.Args())
		return 2
	}
	switch *version {
	case "3.1.1", "4", "311":
		c.Version = packet.V311
	case "5", "5.0":
		c.Version = packet.V5
	default:
		fmt.Fprintf(stderr, "mqttload: -v %s: want 3.1.1 or 5\n", *version)
		return 2
	}
	c.QoS = byte(min(*qos, 3))
	if err := c.defaults(); err != nil {
		fmt.Fprintln(stderr, "mqttload:", err)
		return 2
	}
	if *timeout <= 0 {
		*timeout = c.Duration + c.Drain + c.IdleWait + time.Minute
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var (
		res *result
		err error
	)
	if c.Idle > 0 {
		res, err = runIdle(ctx, c)
	} else {
		res, err = runFlow(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(stderr, "mqttload:", err)
		fmt.Fprintf(stdout, "mqttload mode=%s label=%s ok=false err=%s\n", mode(c), quote(*label), quote(err.Error()))
		return 1
	}
	ok := res.ok(&c)
	writeSummary(stderr, &c, res)
	writeLine(stdout, &c, res, *label, ok)
	if !ok {
		return 1
	}
	return 0
}

func mode(c config) string {
	if c.Idle > 0 {
		return "idle"
	}
	return "flow"
}

// ok reports whether the run passed its checks.
func (r *result) ok(c *config) bool {
	switch {
	case r.Err != nil:
		return false
	case r.Mode == "idle":
		return r.Conns == c.Idle
	case c.QoS > 0 && r.Lost != 0:
		return false
	case c.QoS == 2 && r.Dups != 0:
		return false
	}
	return true
}

func (r *result) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Unique) / r.Elapsed.Seconds()
}

// cpuPerM is the broker's CPU seconds per million delivered messages.
func (r *result) cpuPerM() float64 {
	if r.CPU < 0 || r.Unique == 0 {
		return -1
	}
	return r.CPU.Seconds() / float64(r.Unique) * 1e6
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=\n") {
		return strconv.Quote(s)
	}
	return s
}

// writeLine writes the machine-readable line: "mqttload" then key=value
// pairs separated by single spaces; values with spaces are Go-quoted.
// Unknown figures (no -pid) are -1.
//
// Flow keys: mode v qos pubs subs pairs size rate sent acked expected
// received unique lost dup secs msgs_per_s p50_us p99_us max_us cpu_s
// cpu_s_per_M rss_kb tool_cpu_s ok err. Idle keys: mode v conns rss0_kb rss_kb
// per_conn_bytes ok err.
func writeLine(w io.Writer, c *config, r *result, label string, ok bool) {
	var b strings.Builder
	kv := func(k string, v any) { fmt.Fprintf(&b, " %s=%v", k, v) }
	b.WriteString("mqttload")
	kv("mode", r.Mode)
	kv("label", quote(label))
	kv("v", c.Version)
	if r.Mode == "idle" {
		kv("conns", r.Conns)
		kv("rss0_kb", kb(r.RSS0))
		kv("rss_kb", kb(r.RSS))
		per := int64(-1)
		if r.RSS >= 0 && r.RSS0 >= 0 && r.Conns > 0 {
			per = (r.RSS - r.RSS0) / int64(r.Conns)
		}
		kv("per_conn_bytes", per)
	} else {
		kv("qos", c.QoS)
		kv("pubs", c.Pubs)
		kv("subs", c.Subs)
		kv("pairs", c.Pairs)
		kv("size", c.Size)
		kv("rate", c.Rate)
		kv("sent", r.Sent)
		kv("acked", r.Acked)
		kv("expected", r.Expected)
		kv("received", r.Received)
		kv("unique", r.Unique)
		kv("lost", r.Lost)
		kv("dup", r.Dups)
		kv("secs", fmt.Sprintf("%.3f", r.Elapsed.Seconds()))
		kv("msgs_per_s", fmt.Sprintf("%.0f", r.rate()))
		kv("p50_us", r.Lat.quantile(0.5))
		kv("p99_us", r.Lat.quantile(0.99))
		kv("max_us", r.Lat.max)
		cpu := "-1"
		if r.CPU >= 0 {
			cpu = fmt.Sprintf("%.2f", r.CPU.Seconds())
		}
		kv("cpu_s", cpu)
		kv("cpu_s_per_M", fmt.Sprintf("%.3f", r.cpuPerM()))
		kv("rss_kb", kb(r.RSS))
		kv("tool_cpu_s", fmt.Sprintf("%.2f", r.ToolCPU.Seconds()))
	}
	kv("ok", ok)
	errText := ""
	if r.Err != nil {
		errText = r.Err.Error()
	}
	kv("err", quote(errText))
	fmt.Fprintln(w, b.String())
}

func kb(n int64) int64 {
	if n < 0 {
		return -1
	}
	return n >> 10
}

func writeSummary(w io.Writer, c *config, r *result) {
	if r.Mode == "idle" {
		fmt.Fprintf(w, "%d idle connections (MQTT %v)", r.Conns, c.Version)
		if r.RSS >= 0 && r.RSS0 >= 0 && r.Conns > 0 {
			fmt.Fprintf(w, ": broker RSS %d KiB before, %d KiB after, %d bytes per connection",
				r.RSS0>>10, r.RSS>>10, (r.RSS-r.RSS0)/int64(r.Conns))
		}
		fmt.Fprintln(w)
	} else {
		shape := fmt.Sprintf("%d publishers → %d subscribers (wildcard)", c.Pubs, c.Subs)
		if c.Pairs {
			shape = fmt.Sprintf("%d publisher/subscriber pairs", c.Pubs)
		}
		fmt.Fprintf(w, "%s, QoS %d, MQTT %v, %d-byte payload", shape, c.QoS, c.Version, c.Size)
		if c.Rate > 0 {
			fmt.Fprintf(w, ", at %.0f msgs/s", c.Rate)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  sent %d, delivered %d of %d (lost %d, duplicates %d) in %.2fs: %.0f msgs/s\n",
			r.Sent, r.Unique, r.Expected, r.Lost, r.Dups, r.Elapsed.Seconds(), r.rate())
		fmt.Fprintf(w, "  latency p50 %d µs, p99 %d µs, max %d µs\n",
			r.Lat.quantile(0.5), r.Lat.quantile(0.99), r.Lat.max)
		if r.CPU >= 0 {
			fmt.Fprintf(w, "  broker CPU %.2fs: %.3f s per million delivered; RSS %d KiB\n",
				r.CPU.Seconds(), r.cpuPerM(), r.RSS>>10)
		}
		fmt.Fprintf(w, "  load tool CPU %.2fs (%.0f%% of the run)\n", r.ToolCPU.Seconds(),
			100*r.ToolCPU.Seconds()/max(r.Elapsed.Seconds(), 1e-9))
	}
	if r.Err != nil {
		fmt.Fprintln(w, "  error:", r.Err)
	}
	if !r.ok(c) {
		fmt.Fprintln(w, "  FAILED")
	}
}
