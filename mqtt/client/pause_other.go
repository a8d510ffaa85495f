//go:build !unix

package client

import "time"

func pause(d time.Duration) { time.Sleep(d) }
