// Package daemon builds the gateway from its configuration and runs it:
// simulators, buses, devices and pollers, the embedded broker, the outbound
// queue, the uplink and the health endpoint, with systemd notification,
// SIGHUP reload and an ordered shutdown. It is the only package that
// imports concretes from every tree.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/backoff"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/uplink"
	"github.com/edgegw/edgegw/mqtt/broker"
	"golang.org/x/sync/errgroup"
)

// ShutdownTimeout bounds the broker's shutdown.
const ShutdownTimeout = 3 * time.Second

// Run runs the gateway configured by c until ctx is done. An invalid c
// (Check) or an unusable queue directory or broker listener is an error at
// once; a device missing at run time is reported offline and retried.
// SIGHUP reloads the configuration file: a bad one is logged and the old
// one kept; the broker, the queue and their clients stay.
//
// Run opens the queue, starts the broker, builds the first field and the
// parts around it, and sends READY; however it ends, parts.stop stops
// what was started, in one order.
func Run(ctx context.Context, c *config.Config, reg *drivers.Registry, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := Check(c, reg); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Gateway.StateDir, 0o750); err != nil {
		return fmt.Errorf("daemon: state dir: %w", err)
	}
	// SIGHUP is caught from before READY until Run returns: it never
	// ends the process, even while it starts or stops.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	q, err := openQueue(c, log)
	if err != nil {
		return err
	}
	p := &parts{log: log, q: q}
	return p.stop(p.run(ctx, hup, c, reg))
}

// parts are what Run started, each with what stops it; stop stops them in
// the shutdown order and skips those never started.
//
// Their goroutines run in errgroups, one per step of the shutdown. Each
// logs its own failure and returns nil: a part that fails does not stop
// the gateway, the health endpoint and the watchdog report it (a broker
// that no longer accepts clients stops the watchdog's pings, and systemd
// restarts the unit).
type parts struct {
	log *slog.Logger
	q   *buffer.Queue
	srv *broker.Server // nil until started

	cmds        *gateway.Commands // the way in for commands; closed once READY was sent
	stopForward func()

	stopUplink context.CancelFunc
	uplink     errgroup.Group // the uplink's Run

	stopHealth context.CancelFunc
	serving    errgroup.Group // the broker's listeners, the health endpoint, the console, the watchdog

	started bool // READY was sent
}

// run starts the broker, the first field and the parts around it, sends
// READY, runs the field and serves until ctx is done or the field stops.
// It returns why it stopped.
func (p *parts) run(ctx context.Context, hup <-chan os.Signal, c *config.Config, reg *drivers.Registry) error {
	log := p.log
	srv, err := p.startBroker(c)
	if err != nil {
		return err
	}
	d := &daemon{log: log, q: p.q, srv: srv}
	// Commands wait until the first field is up.
	if d.cmds, err = newCommands(c, d); err != nil {
		return err
	}
	p.cmds = d.cmds
	deps := fieldDeps(srv, p.q)
	f, err := newField(c, reg, log, deps)
	if err != nil {
		return err
	}
	d.setField(f)
	if err := p.startServices(c, d); err != nil {
		return err
	}
	// The broker listens and the queue is open.
	notify(log, sd.SdNotifyReady)
	log.Info("gateway started", "id", c.Gateway.ID, "prefix", c.Gateway.Prefix(), "devices", len(c.Devices))
	p.started = true
	// A reloaded field's gateway reads the tail written since the last
	// save too (cheap: only past the saved point), but the queue's next
	// number at open no longer says what was written.
	deps.Backlog, deps.TelemetryNext = backlog(p.q, true), 0
	r, _ := d.swap(nil, func([]drivers.Reading) (*field, error) { return f, nil })
	d.cmds.Release()
	return d.serve(ctx, hup, c, reg, deps, r)
}

// stop stops what run started, in order, closes the queue and returns
// err, or the queue's close error if err is nil. Commands being applied
// finish and their results are spooled; the forwarder stops; the uplink
// sends what it can, publishes "offline" and disconnects; the broker
// shuts down within ShutdownTimeout; then the health endpoint, the
// console and the watchdog stop, and last the queue closes.
func (p *parts) stop(err error) error {
	if p.cmds != nil && p.started {
		// Before READY the commands are held: one that came meanwhile
		// waits for a field that never runs, and Close would wait for it.
		p.cmds.Close()
	}
	if p.stopForward != nil {
		p.stopForward()
	}
	if p.stopUplink != nil {
		p.stopUplink()
	}
	p.uplink.Wait()
	if p.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		if err := p.srv.Shutdown(sctx); err != nil {
			p.log.Warn("broker shutdown", "err", err)
		}
		cancel()
	}
	if p.stopHealth != nil {
		p.stopHealth()
	}
	p.serving.Wait()
	if cerr := p.q.Close(); cerr != nil {
		p.log.Error("queue close", "err", cerr)
		if err == nil {
			err = cerr
		}
	}
	if p.started {
		p.log.Info("gateway stopped")
	}
	return err
}

// startBroker starts the embedded broker of c. It listens before
// startBroker returns, so that a listener that cannot be opened is an
// error at once, and serves until stop shuts it down.
func (p *parts) startBroker(c *config.Config) (*broker.Server, error) {
	srv, err := broker.New(brokerOptions(c, p.log))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	p.srv = srv
	if err := srv.Listen(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	p.serving.Go(func() error {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, broker.ErrServerClosed) {
			p.log.Error("broker stopped", "err", err)
		}
		return nil
	})
	for _, kind := range []string{"tcp", "tls", "ws", "wss"} {
		if a := srv.Addr(kind); a != nil {
			p.log.Info("broker listening", "addr", a.String(), "kind", kind)
		}
	}
	return srv, nil
}

// startServices builds what runs around the field (the uplink, its
// forwarder, the console, the health listener) and then, when nothing can
// fail any more, runs them with the watchdog: a start that fails has let
// no remote or console command in.
func (p *parts) startServices(c *config.Config, d *daemon) error {
	if c.Uplink.URL != "" {
		up, err := newUplink(c, d)
		if err != nil {
			return err
		}
		d.up = up
	}
	if err := p.startForward(c, d.srv); err != nil {
		return err
	}
	ln, err := listenHealth(c, d)
	if err != nil {
		return err
	}
	p.startHealth(c, d, ln)
	p.startUplink(d.up)
	return nil
}

// startForward bridges the local topics of [[uplink.forward]] into the
// queue, until stopForward.
func (p *parts) startForward(c *config.Config, srv *broker.Server) error {
	rules := bridgeRules(c.Uplink.Forward)
	if len(rules) == 0 {
		return nil
	}
	stop, err := uplink.Forward(brokerPort{srv}, p.q, rules, p.log.With("component", "forward"))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	p.stopForward = stop
	return nil
}

// listenHealth builds the console, if on, and opens the health listener,
// in the console's TLS if it has a certificate; nil without [health]
// listen.
func listenHealth(c *config.Config, d *daemon) (net.Listener, error) {
	var err error
	if d.console.c, err = newConsole(c, d); err != nil {
		return nil, err
	}
	if c.Health.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.Health.Listen)
	if err == nil {
		ln, err = consoleListener(c, ln)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: health: %w", err)
	}
	return ln, nil
}

// startHealth runs the console, serves it with /healthz and /metrics on
// ln (if any) and runs the watchdog, until stopHealth.
func (p *parts) startHealth(c *config.Config, d *daemon, ln net.Listener) {
	ctx, stop := context.WithCancel(context.Background())
	p.stopHealth = stop
	d.runConsole(ctx, &p.serving)
	if ln != nil {
		hs := newHealthServer(d.handler(), defaultHealthLimits)
		p.serving.Go(func() error {
			hs.Serve(limitListener(ln, defaultHealthLimits.maxConns))
			return nil
		})
		p.serving.Go(func() error {
			<-ctx.Done()
			hs.Close()
			return nil
		})
		p.log.Info("health listening", "addr", ln.Addr().String())
	}
	p.serving.Go(func() error {
		return watchdog(ctx, p.log, c.Health.WatchdogInterval.D(), d.alive)
	})
}

// startUplink runs up, if any, until stopUplink. It is the queue's only
// consumer; the field's recovery reads the backlog's tail with Scan,
// which does not disturb it.
func (p *parts) startUplink(up *uplink.Uplink) {
	if up == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stopUplink = stop
	p.uplink.Go(func() error {
		keepRunning(ctx, up.Run, uplinkRestart, p.log)
		return nil
	})
}

// uplinkRestart spaces the uplink's restarts after it stopped on an error.
var uplinkRestart = backoff.Policy{Min: time.Second, Max: time.Minute}

// keepRunning runs run until ctx ends. When run stops on an error of its
// own (a queue it could not read, a state file it could not write), the
// error is logged and run starts again after a wait from p: like a
// process restart, the uplink rewinds the queue and resumes its flows, so
// a record it held is sent again, never lost, and the gateway does not
// stay offline until the next restart.
func keepRunning(ctx context.Context, run func(context.Context) error, p backoff.Policy, log *slog.Logger) {
	for attempt := 0; ; attempt++ {
		err := run(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return
		}
		wait := p.Delay(attempt)
		log.Error("uplink stopped, starting it again", "err", err, "backoff", wait, "attempt", attempt+1)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// serve runs the field r until ctx is done or the field stops, and on each
// SIGHUP replaces it with one built from the configuration file loaded
// again. It returns why it stopped.
func (d *daemon) serve(ctx context.Context, hup <-chan os.Signal, c *config.Config, reg *drivers.Registry, deps gateway.Deps, r *running) error {
	log := d.log
	for {
		select {
		case <-ctx.Done():
			// Pollers stop, devices close, the gateway saves its state;
			// the field's run returns only then.
			notify(log, sd.SdNotifyStopping)
			d.replace(r, nil)
			return nil
		case err := <-r.done:
			r.stop()
			if err == nil {
				err = errors.New("daemon: devices stopped")
			}
			notify(log, sd.SdNotifyStopping)
			return err
		case <-hup:
			nc, err := reload(c, reg, log)
			if err != nil {
				log.Error("reload refused, old configuration kept", "err", err)
				continue
			}
			notify(log, sd.SdNotifyReloading)
			r, err = d.replace(r, func(latest []drivers.Reading) (*field, error) {
				deps.Latest = latest
				nf, err := newField(nc, reg, log, deps)
				if err == nil {
					c = nc
					log.Info("configuration reloaded", "devices", len(c.Devices))
					return nf, nil
				}
				return newField(c, reg, log, deps)
			})
			if err != nil {
				return err
			}
			notify(log, sd.SdNotifyReady)
		}
	}
}

// fieldDeps are what a field's gateway is given: the broker to publish to
// and the queue to spool to and read its backlog from.
func fieldDeps(srv *broker.Server, q *buffer.Queue) gateway.Deps {
	deps := gateway.Deps{Publisher: brokerPort{srv}, Spool: q, Backlog: backlog(q, false)}
	for _, cs := range q.Stats().Classes {
		if cs.Name == gateway.ClassTelemetry {
			deps.TelemetryNext = cs.NextSeq
		}
	}
	return deps
}

// running is a field being run.
type running struct {
	stop context.CancelFunc
	done chan error // run's result
}

// start sets f as the field commands go to, and runs it until stopped.
func (d *daemon) start(f *field) *running {
	d.setField(f)
	ctx, stop := context.WithCancel(context.Background())
	r := &running{stop: stop, done: make(chan error, 1)}
	go func() { r.done <- f.run(ctx) }()
	return r
}

// replace waits for the commands running on r's field to finish,
// stops it and, unless next is nil, starts the field next builds. Commands
// that arrive meanwhile wait, and go to the new field. next gets the
// stopped gateway's last readings, so that interlocks pass before the
// devices are read again.
func (d *daemon) replace(r *running, next func(latest []drivers.Reading) (*field, error)) (*running, error) {
	d.cmds.Hold()
	defer d.cmds.Release()
	return d.swap(r, next)
}

// swap is replace with the commands held by the caller; r may be nil. The
// new field runs once each of its devices was tried once: a command let
// through then finds the actuators that could be built.
func (d *daemon) swap(r *running, next func(latest []drivers.Reading) (*field, error)) (*running, error) {
	var latest []drivers.Reading
	if r != nil {
		r.stop()
		<-r.done
		latest = d.field().gw.Latest()
	}
	if next == nil {
		return nil, nil
	}
	f, err := next(latest)
	if err != nil {
		return nil, err
	}
	nr := d.start(f)
	<-f.sup.Up()
	return nr, nil
}

// reload loads and checks the configuration file again.
func reload(old *config.Config, reg *drivers.Registry, log *slog.Logger) (*config.Config, error) {
	nc, err := config.Load(old.File())
	if err != nil {
		return nil, err
	}
	if err := Check(nc, reg); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(nc.Broker, old.Broker) {
		log.Warn("[broker] changes take effect at the next restart")
	}
	if !reflect.DeepEqual(nc.Queue, old.Queue) {
		log.Warn("[queue] changes take effect at the next restart")
	}
	if !reflect.DeepEqual(nc.Uplink, old.Uplink) {
		log.Warn("[uplink] changes take effect at the next restart")
	}
	if nc.Gateway != old.Gateway {
		log.Warn("[gateway] changes take effect at the next restart")
		nc.Gateway = old.Gateway
	}
	return nc, nil
}

// newUplink builds the uplink of c on d's queue: remote commands go to the
// current field's gateway (d.command), the cloud's messages matched by
// [[uplink.receive]] to d's broker.
func newUplink(c *config.Config, d *daemon) (*uplink.Uplink, error) {
	o := uplinkOptions(c, d.log)
	o.Queue = d.q
	o.OnCommand = d.cmds.Remote
	o.Deliver = deliverLocal(d.srv, o.Log)
	up, err := uplink.New(o)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return up, nil
}

// deliverLocal publishes the cloud's messages on srv. They meet the
// broker's ACL as UplinkUser, like a local client's; a topic it denies is
// logged once.
func deliverLocal(srv *broker.Server, log *slog.Logger) func(gateway.Record) {
	var denied atomic.Int64
	return func(r gateway.Record) {
		err := srv.PublishAs(context.Background(), broker.UplinkUser, toMessage(r))
		switch {
		case errors.Is(err, broker.ErrNotAuthorized):
			if denied.Add(1) == 1 {
				log.Warn("receive: the broker's acl denies "+broker.UplinkUser+" this topic; dropped (logged once)", "topic", r.Topic)
			}
		case err != nil:
			log.Warn("receive: local publish failed", "topic", r.Topic, "err", err)
		}
	}
}

// openQueue opens the outbound queue of [queue].
func openQueue(c *config.Config, log *slog.Logger) (*buffer.Queue, error) {
	o, err := queueOptions(c, log)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	q, err := buffer.Open(filepath.Clean(c.Queue.Dir), o)
	if err != nil {
		return nil, fmt.Errorf("daemon: queue: %w", err)
	}
	return q, nil
}
