package daemon

import (
	"context"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notify sends a state to systemd when run as a Type=notify unit; outside
// systemd it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// watchdog pings systemd's watchdog while alive() holds, at the configured
// interval or half of WatchdogSec, until ctx is done. A main loop that
// stops answering stops the pings, and systemd restarts the unit.
func watchdog(ctx context.Context, log *slog.Logger, every time.Duration, alive func() bool) error {
	if every <= 0 {
		d, err := sd.SdWatchdogEnabled(false)
		if err != nil || d <= 0 {
			return nil
		}
		every = d / 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if alive() {
				notify(log, sd.SdNotifyWatchdog)
			}
		}
	}
}
