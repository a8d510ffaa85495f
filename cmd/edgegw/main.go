// Command edgegw is the edge gateway: it polls sensors, drives actuators,
// runs the embedded MQTT broker, keeps the outbound queue and forwards it to
// the cloud. It parses flags and starts; everything else lives in gateway.
//
//	edgegw -config /etc/edgegw/edgegw.toml          run
//	edgegw -config /etc/edgegw/edgegw.toml -check   validate and exit
//	edgegw -version                                 version and driver kinds
//	edgegw -passwd /etc/edgegw/passwd -user dash    set a broker password (read from stdin)
//	edgegw -decode < batch                          print a batch ([uplink.batch]) unbatched
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/edgegw/edgegw/drivers/kinds"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/daemon"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
)

// version is stamped by scripts/release.sh with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgegw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (TOML)")
	check := fs.Bool("check", false, "validate the configuration without touching hardware, print every problem and exit")
	showVersion := fs.Bool("version", false, "print the version and the driver kinds, and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	passwd := fs.String("passwd", "", "set -user's password in the broker password `file` (bcrypt), reading it from the first line of stdin, and exit")
	user := fs.String("user", "", "user name for -passwd")
	decode := fs.Bool("decode", false, "read one uplink batch (payload of {topic_prefix}/batch/v1) from stdin, print its messages as \"topic payload\" lines and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	reg := kinds.Registry()
	if *showVersion {
		fmt.Fprintln(stdout, "edgegw", versionString())
		fmt.Fprintln(stdout, "driver kinds:", strings.Join(reg.Kinds(), " "))
		fmt.Fprintln(stdout, "simulator kinds:", strings.Join(daemon.SimulatorKinds, " "))
		return 0
	}
	if *decode {
		if err := uplink.PrintBatch(stdout, stdin, uplink.BatchDecodeLimit); err != nil {
			fmt.Fprintln(stderr, "edgegw: -decode:", err)
			return 1
		}
		return 0
	}
	if *passwd != "" {
		return setPassword(*passwd, *user, stdin, stderr)
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "edgegw: -config is required")
		fs.Usage()
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "edgegw: -log-level:", err)
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err == nil {
		err = daemon.Check(cfg, reg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Settings that are unsafe, or that the chosen cloud refuses, are
	// warnings: the gateway still runs.
	warnings := daemon.Warnings(cfg, reg)
	if *check {
		for _, w := range warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	for _, w := range warnings {
		log.Warn("configuration allowed but unsafe", "err", w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, reg, log); err != nil {
		log.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// setPassword adds or replaces user's entry in the broker's password file.
func setPassword(path, user string, stdin io.Reader, stderr io.Writer) int {
	if user == "" || strings.ContainsAny(user, ": \t\n") {
		fmt.Fprintln(stderr, "edgegw: -passwd needs -user NAME (no ':' or spaces)")
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		fmt.Fprintln(stderr, "edgegw: -passwd: no password on stdin:", err)
		return 2
	}
	if err := broker.AppendPasswordEntry(path, user, password); err != nil {
		fmt.Fprintln(stderr, "edgegw:", err)
		return 1
	}
	return 0
}
