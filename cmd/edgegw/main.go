// Command edgegw is the edge gateway: it polls sensors, drives actuators,
// runs the embedded MQTT broker, keeps the outbound queue and forwards it to
// the cloud. It parses flags and starts; everything else lives in gateway.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

// version is stamped by scripts/release.sh with -ldflags "-X main.version=…".
var version = ""

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("edgegw", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println("edgegw", versionString())
		return 0
	}
	fmt.Fprintln(os.Stderr, "edgegw: -config is not available yet")
	return 2
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
