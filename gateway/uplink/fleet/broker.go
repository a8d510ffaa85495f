package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cloud is the cloud broker: a Mosquitto process on a loopback port that
// keeps its address, config, persistence and log across restarts.
type cloud struct {
	bin  string
	dir  string
	addr string
	conf string
	log  string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startCloud writes a config for bin in dir (a free loopback port,
// anonymous access, persistence, no connection or queue limits, connect
// notices in a log with Unix-second timestamps) and starts Mosquitto.
func startCloud(bin, dir string, inflight int) (*cloud, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fleet: free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	c := &cloud{bin: bin, dir: dir, addr: addr,
		conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	lines := []string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"log_dest file " + c.log,
		"log_type notice",
		"log_timestamp true",
		"max_connections -1",
		// The checker's session must not drop what arrives while it is
		// away: no count or byte limit on queued messages.
		"max_queued_messages 0",
		"max_inflight_messages " + strconv.Itoa(inflight),
	}
	if os.Geteuid() == 0 {
		// Stay root: dir is not writable by the mosquitto user.
		lines = append(lines, "user root")
	}
	if err := os.WriteFile(c.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// start runs Mosquitto and waits until it accepts connections.
func (c *cloud) start() error {
	var out bytes.Buffer
	cmd := exec.Command(c.bin, "-c", c.conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fleet: mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("fleet: mosquitto exited before listening on %s: %s %s", c.addr, cmd.ProcessState, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop(syscall.SIGKILL)
			return fmt.Errorf("fleet: mosquitto not listening on %s after 10s", c.addr)
		}
	}
}

// save makes Mosquitto write its persistence file (SIGUSR1) and waits
// until the file has changed, so that a kill afterwards loses nothing
// the scenario needs (the sessions and subscriptions).
func (c *cloud) save() error {
	db := filepath.Join(c.dir, "mosquitto.db")
	before := time.Time{}
	if fi, err := os.Stat(db); err == nil {
		before = fi.ModTime()
	}
	if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("fleet: mosquitto: save: %w", err)
	}
	for range 1000 {
		if fi, err := os.Stat(db); err == nil && fi.ModTime().After(before) {
			// Let the write finish: Mosquitto writes a new file and
			// renames it, so a changed mtime means a complete file.
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("fleet: mosquitto did not write its persistence file within 10s")
}

// stop sends sig and waits for the process to exit.
func (c *cloud) stop(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// cpu returns the running process's user+system CPU time [proc(5),
// /proc/PID/stat fields 14 and 15, in USER_HZ = 100 ticks per second on
// every Linux architecture we build for].
func (c *cloud) cpu() (time.Duration, error) {
	if c.cmd == nil {
		return 0, errors.New("fleet: mosquitto not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("fleet: /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("fleet: /proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("fleet: /proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / 100, nil
}

// connects reads the CONNECTs Mosquitto accepted from since up to, not
// including, until (whole seconds; zero until: to the end) from its log,
// per second, leaving out the client ids in skip.
func (c *cloud) connects(since, until time.Time, skip map[string]bool) ([]int, error) {
	f, err := os.Open(c.log)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer f.Close()
	end := int64(math.MaxInt64)
	if !until.IsZero() {
		end = until.Unix()
	}
	return countConnects(f, since.Unix(), end, skip)
}

// countConnects parses Mosquitto log lines of the form
//
//	1700000000: New client connected from 127.0.0.1:40000 as gw0001 (p5, c0, k30).
//
// and counts them per second from since up to, not including, until
// (Unix seconds).
func countConnects(r io.Reader, since, until int64, skip map[string]bool) ([]int, error) {
	var bins []int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		ts, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		rest, ok = strings.CutPrefix(rest, "New client connected from ")
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, " as ")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, " ")
		if skip[id] {
			continue
		}
		t, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || t < since || t >= until {
			continue
		}
		i := int(t - since)
		for len(bins) <= i {
			bins = append(bins, 0)
		}
		bins[i]++
	}
	return bins, sc.Err()
}
