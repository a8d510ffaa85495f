// Command brokerd runs the broker alone, for memory and CPU measurements:
// go build -o /tmp/brokerd ./mqtt/broker/testdata/brokerd
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgegw/edgegw/mqtt/broker"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "TCP address")
	dir := flag.String("state", "", "state directory")
	flag.Parse()
	s, err := broker.New(broker.Options{Listen: *listen, StateDir: *dir, MaxInflight: 1000, MaxQueued: 100000})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Shutdown(context.Background())
	}()
	if err := s.ListenAndServe(); err != broker.ErrServerClosed {
		log.Fatal(err)
	}
}
