package broker

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/mqtt/packet"
)

// rawPublisher publishes n QoS 2 messages on its own connection and
// returns the first error.
func rawPublisher(s *Server, id string, n int) error {
	a, b := net.Pipe()
	go s.ServeConn(b)
	defer a.Close()
	a.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(a)
	send := func(p packet.Packet) error {
		buf, err := packet.Append(nil, p, packet.V5)
		if err == nil {
			_, err = a.Write(buf)
		}
		return err
	}
	if err := send(&packet.Connect{Version: packet.V5, ClientID: id, CleanStart: true}); err != nil {
		return err
	}
	if _, err := packet.Read(r, packet.V5, 0); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		pid := uint16(i%100 + 1)
		if err := send(&packet.Publish{Topic: "st/" + id, QoS: 2, PacketID: pid, Payload: []byte(fmt.Sprintf("%s-%d", id, i))}); err != nil {
			return err
		}
		if _, err := packet.Read(r, packet.V5, 0); err != nil { // PUBREC
			return err
		}
		if err := send(&packet.Pubrel{PacketID: pid}); err != nil {
			return err
		}
		if _, err := packet.Read(r, packet.V5, 0); err != nil { // PUBCOMP
			return err
		}
	}
	return send(&packet.Disconnect{})
}

func TestConcurrentStress(t *testing.T) {
	// Publishers, subscribers and a client taking its own session over
	// again and again, all at once: no deadlock, no race, and QoS 2
	// delivered exactly once to every stable subscriber.
	s := newServer(t, Options{MaxInflight: 8})
	const pubs, per = 6, 100
	subs := make([]*tclient, 3)
	for i := range subs {
		subs[i] = connect(t, s, packet.V5, fmt.Sprint("stable-", i), true)
		subs[i].subscribe(1, sub("st/#", 2))
	}
	var wg sync.WaitGroup
	errs := make(chan error, pubs+1)
	for i := 0; i < pubs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rawPublisher(s, fmt.Sprint("p", i), per); err != nil {
				errs <- err
			}
		}()
	}
	stop := make(chan struct{})
	var flap sync.WaitGroup
	flap.Add(1)
	go func() {
		defer flap.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			a, b := net.Pipe()
			go s.ServeConn(b)
			a.SetDeadline(time.Now().Add(10 * time.Second))
			buf, _ := packet.Append(nil, &packet.Connect{Version: packet.V5, ClientID: "flappy",
				Props: packet.Properties{SessionExpiry: 60}}, packet.V5)
			buf, _ = packet.Append(buf, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{sub("st/#", byte(k%3))}}, packet.V5)
			go func() { // read and never acknowledge
				r := bufio.NewReader(a)
				for {
					if _, err := packet.Read(r, packet.V5, 0); err != nil {
						return
					}
				}
			}()
			a.Write(buf)
			if k%2 == 0 {
				a.Close()
			}
		}
	}()
	for _, c := range subs {
		seen := map[string]bool{}
		for len(seen) < pubs*per {
			switch p := c.recv().(type) {
			case *packet.Publish:
				if seen[string(p.Payload)] {
					t.Fatalf("%s delivered twice", p.Payload)
				}
				seen[string(p.Payload)] = true
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			case *packet.Pubrel:
				c.send(&packet.Pubcomp{PacketID: p.PacketID})
			default:
				t.Fatalf("got %T", p)
			}
		}
	}
	wg.Wait()
	close(stop)
	flap.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
