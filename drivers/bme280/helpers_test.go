package bme280_test

import (
	"context"
	"testing"

	"github.com/edgegw/edgegw/drivers/i2c"
)

// runBus runs b until the test ends.
func runBus(t testing.TB, b *i2c.Bus) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}
