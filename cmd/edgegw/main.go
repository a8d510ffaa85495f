// Command edgegw is the edge gateway: it polls sensors, drives actuators,
// runs the embedded MQTT broker, keeps the outbound queue and forwards it to
// the cloud. It parses flags and starts; everything else lives in gateway.
//
//	edgegw -config /etc/edgegw/edgegw.toml          run
//	edgegw -config /etc/edgegw/edgegw.toml -check   validate and exit
//	edgegw -version                                 version and driver kinds
package main

import (
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

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/daemon"
)

// version is stamped by scripts/release.sh with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgegw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (TOML)")
	check := fs.Bool("check", false, "validate the configuration without touching hardware, print every problem and exit")
	showVersion := fs.Bool("version", false, "print the version and the driver kinds, and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	reg := registry()
	if *showVersion {
		fmt.Fprintln(stdout, "edgegw", versionString())
		fmt.Fprintln(stdout, "driver kinds:", strings.Join(reg.Kinds(), " "))
		fmt.Fprintln(stdout, "simulator kinds:", strings.Join(daemon.SimulatorKinds, " "))
		return 0
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
	if *check {
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
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
