//go:build !linux

package client

import "time"

func pause(d time.Duration) { time.Sleep(d) }
