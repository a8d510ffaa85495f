package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a server program (Mosquitto, NATS, RabbitMQ) run by a test in
// its own process group, so that a kill reaches what it started
// (RabbitMQ's Erlang VM).
type proc struct {
	name string
	argv []string
	env  []string
	log  string        // file the program's output goes to
	poll time.Duration // between readiness checks; 0 for 50 ms

	// mu guards cmd and done.
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs the program and waits until ready returns nil, the program
// exits or timeout passes.
func (p *proc) start(timeout time.Duration, ready func() error) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return errors.New("already running")
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		out.Close()
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		out.Close()
		close(done)
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := p.poll
	if poll == 0 {
		poll = 50 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err = ready(); err == nil {
			return nil
		}
		select {
		case <-done:
			p.clear(cmd)
			return fmt.Errorf("%s exited before it was ready: %s (log %s)", p.name, cmd.ProcessState, p.log)
		case <-deadline.C:
			p.signal(syscall.SIGKILL)
			return fmt.Errorf("%s not ready after %v: %v (log %s)", p.name, timeout, err, p.log)
		case <-tick.C:
		}
	}
}

func (p *proc) clear(cmd *exec.Cmd) {
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd, p.done = nil, nil
	}
	p.mu.Unlock()
}

// signal sends sig to the process group and waits for the program to
// exit (SIGKILL after 20 s).
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	p.clear(cmd)
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// logTail returns the end of the program's log, for a failed test.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("mqtttest: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// tcpReady returns nil once something accepts TCP connections on addr.
func tcpReady(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// mqttReady connects to addr with a 3.1.1 CONNECT (clean session) and
// returns nil once the server accepts it: the server is ready for MQTT
// clients, not only listening.
func mqttReady(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	id := fmt.Sprintf("mqtttest-probe-%d", time.Now().UnixNano())
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return err
	}
	if !bytes.Equal(ack[:], []byte{0x20, 2, 0, 0}) {
		return fmt.Errorf("CONNACK % x", ack)
	}
	c.Write([]byte{0xe0, 0}) // DISCONNECT
	return nil
}
